"""The README's examples run: each fenced block after a `<!-- tested … -->` line, the `console` blocks as shell
commands (every one must succeed) and the `pycon` block as a doctest (its printed values must be what the
README shows), against a private root; the VM examples included."""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from tests.integration.conftest import ISOBOX, Cli

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
_COMMENT = re.compile(r"\s{2,}#.*$")
_TESTED = re.compile(r"<!-- tested[^>]*-->\n```(\w+)\n(.*?)\n```", re.DOTALL)


def readme_blocks(kind: str) -> list[str]:
    return [body for language, body in _TESTED.findall(README.read_text()) if language == kind]


def test_the_readme_marks_its_examples() -> None:
    assert len(readme_blocks("console")) >= 2 and len(readme_blocks("pycon")) == 1


@pytest.mark.parametrize("index", range(len(readme_blocks("console"))))
def test_console_block(cli: Cli, tmp_path: Path, index: int) -> None:
    # Each line must succeed (its last command, as a user sees it); comments (after two spaces) are dropped.
    commands = [_COMMENT.sub("", line.removeprefix("# ")) for line in readme_blocks("console")[index].splitlines()]
    checked = [f"{command} || {{ echo {shlex.quote('failed: ' + command)} >&2; exit 1; }}" for command in commands]
    search = os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    script = "\n".join([f"isobox() {{ {' '.join(ISOBOX)} \"$@\"; }}", *checked])
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, ISOBOX_ROOT=str(cli.root), PYTHONPATH=search))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    if index == 0:
        assert done.stdout.startswith("hello\n") and "web" in done.stdout


def test_python_block(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISOBOX_ROOT", str(cli.root))
    (block,) = readme_blocks("pycon")
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block, {}, "README", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted == len(test.examples)
