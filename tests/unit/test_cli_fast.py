"""The fast run/create parser and the typer command read every command line to the same RunFlags."""

from __future__ import annotations

from typing import Any

import pytest

from isobox.cli import app as app_module
from isobox.cli import fast, workloads

CASES = [
    ["run", "--rm", "busybox", "echo", "hi"],
    ["run", "-it", "--name", "x", "-e", "A=1", "-e", "B", "-w", "/tmp", "busybox", "sh", "-c", "echo -e x"],
    ["run", "-d", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "20", "--cap-add", "NET_ADMIN", "busybox"],
    ["run", "--vm", "-v", "data:/data:ro", "--tmpfs", "/t", "-p", "8080:80", "--network", "none", "busybox", "ls"],
    ["run", "--restart", "on-failure:2", "--userns", "auto", "--stop-timeout", "3", "busybox", "sleep", "1"],
    ["create", "--entrypoint", "/bin/echo", "--label", "k=v", "--read-only", "--init", "busybox", "a", "-b"],
]


def _capture(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []

    def run_workload(image: str, command: list[str], detach: bool, flags: Any) -> int:
        seen.append((image, list(command), detach, flags))
        return 0

    def create_workload(image: str, command: list[str], flags: Any) -> int:
        seen.append((image, list(command), False, flags))
        return 0

    monkeypatch.setattr(module, "run_workload", run_workload)
    monkeypatch.setattr(module, "create_workload", create_workload)
    return seen


@pytest.mark.parametrize("argv", CASES)
def test_fast_path_matches_typer(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fast_seen = _capture(monkeypatch, fast)
    assert fast.try_run(argv) == 0
    typer_seen = _capture(monkeypatch, workloads)
    with pytest.raises(SystemExit) as exit_info:
        app_module.run_app(argv)
    assert exit_info.value.code in (0, None)
    assert fast_seen == typer_seen


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--help"],
        ["run", "--no-such-flag", "busybox"],
        ["run", "busybox", "--", "x"],
        ["ps"],
        ["--x", "run"],
        ["run", "--cpus", "many", "busybox"],
    ],
)
def test_unsure_command_lines_go_to_typer(argv: list[str]) -> None:
    assert fast.try_run(argv) is None


def test_global_options_before_the_verb(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    seen = _capture(monkeypatch, fast)
    monkeypatch.delenv("ISOBOX_ROOT", raising=False)
    assert fast.try_run(["--root", str(tmp_path), "run", "busybox"]) == 0
    import os

    assert os.environ["ISOBOX_ROOT"] == str(tmp_path) and seen[0][0] == "busybox"
