"""The README names every name of the Python API (isobox.__all__), and its first screen stays a newcomer's:
what isobox is, how to install it, five commands, before any detail."""

from __future__ import annotations

import re
from pathlib import Path

import isobox

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_name_of_the_api() -> None:
    text = README.read_text()
    missing = [name for name in isobox.__all__ if f"`{name}`" not in text]
    assert missing == []


def test_first_screen_is_for_a_newcomer() -> None:
    first = "\n".join(README.read_text().splitlines()[:45])
    assert "## Install" in first and "## Five commands" in first
    five = first.split("## Five commands", 1)[1].split("```console\n", 1)[1].split("```", 1)[0]
    assert len(five.strip().splitlines()) == 5
    assert not re.search(r"issue \d+|CVE-\d{4}", README.read_text())  # these live in docs/status.md
