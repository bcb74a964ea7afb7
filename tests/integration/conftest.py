"""Integration fixtures: the `isobox` command against a private root, and leak checks after each test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.leaks import processes_with as processes_with  # the tests' import site

ISOBOX = [sys.executable, "-m", "isobox.cli.main"]


@dataclass
class Cli:
    root: Path
    seen: set[str] = field(default_factory=set)  # workload ids this test created (for the leak check)

    def __call__(
        self, *args: str, input: bytes | None = None, timeout: float = 60, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, ISOBOX_ROOT=str(self.root))
        done = subprocess.run(
            [*ISOBOX, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input.decode() if input is not None else None,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        workloads = self.root / "lib" / "workloads"
        if workloads.is_dir():
            self.seen.update(p.name for p in workloads.iterdir())
        if check and done.returncode != 0:
            raise AssertionError(f"isobox {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done


@pytest.fixture
def cli(isobox_root: Path) -> Iterator[Cli]:
    """The `isobox` command on the test's root. What a test leaves running is removed, and nothing of it may
    remain on the host, by the `isobox_root` fixture (tests/leaks.py); the ids the commands made are handed
    to that check."""
    from tests.conftest import SEEN

    runner = Cli(isobox_root, SEEN.setdefault(isobox_root, set()))
    yield runner
