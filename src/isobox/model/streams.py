"""Where a workload's (or an exec's) standard streams go: plain values that the CLI, the Python API and the
HTTP API hand to the service layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attach:
    """File descriptors of the caller: the workload's stdin comes from ``stdin`` (None: not interactive),
    its output goes to ``stdout``/``stderr`` (the same fd for a terminal)."""

    stdin: int | None = 0
    stdout: int = 1
    stderr: int = 2
    # The terminal on these fds is handed over (the API's pseudo-terminal), not the caller's own: an exec -t
    # may lead a session on it, so a size set on it later reaches the exec (the kernel's SIGWINCH).
    handed_terminal: bool = False


@dataclass(frozen=True)
class ExecSpec:
    """A further process in a running workload (`exec`)."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    user: str | None = None
    tty: bool = False
    interactive: bool = False
    detach: bool = False
