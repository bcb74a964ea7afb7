"""The Driver protocol: what service/ asks of a backend. The container/VM difference lives behind it.

Contract, for both drivers:
- ``create(plan)`` prepares everything a start needs (rootfs or disk, config) under ``plan.workload_dir``
  and starts nothing. On failure it leaves nothing behind.
- ``start(record, attach)`` starts the workload. With ``attach=None`` it returns once the workload runs,
  and the workload outlives the calling process (no Python process per workload). With an ``Attach``,
  it also streams the workload's stdout/stderr to the given fds (stdin from ``attach.stdin`` when
  interactive) until the workload exits. Output always also goes to ``plan.log_path`` in the log format
  of ``isobox.drivers.logfile``.
- ``observe(record)`` reports the real state (running, exited with code, OOM-killed), from the host alone.
- ``stop``/``kill`` signal the workload; ``exec`` runs a further process in a running workload, with the
  caller's stdio, returning its exit code; ``stats`` reads resource usage.
- ``delete(record)`` removes every trace (processes, mounts, cgroups, TAP, sockets, files), is
  idempotent and succeeds on a half-created or crashed workload.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from isobox.model.plan import RunPlan
from isobox.model.record import Observation, Stats, WorkloadRecord


@dataclass(frozen=True)
class Attach:
    stdin: int | None = 0  # fd, or None when not interactive
    stdout: int = 1
    stderr: int = 2


@dataclass(frozen=True)
class ExecSpec:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    user: str | None = None
    tty: bool = False
    interactive: bool = False
    detach: bool = False


class Driver(Protocol):
    kind: str

    def create(self, plan: RunPlan) -> dict[str, str]:
        """Prepare; returns driver facts to keep in the record (e.g. accelerator and why)."""
        ...

    def start(
        self, record: WorkloadRecord, attach: Attach | None = None, *, during_create: Callable[[], None] | None = None
    ) -> int:
        """Start; returns the pid of the workload's main process (attach: after it exited). ``during_create``
        (network plumbing) runs before the workload's process does, overlapping the runtime's work where
        the driver can."""
        ...

    def observe(self, record: WorkloadRecord) -> Observation: ...

    def wait(self, record: WorkloadRecord, timeout_s: float | None = None) -> Observation:
        """Block until the workload is no longer running (or the timeout passes)."""
        ...

    def stop(self, record: WorkloadRecord, timeout_s: float) -> None: ...

    def kill(self, record: WorkloadRecord, signal: int) -> None: ...

    def attach(self, record: WorkloadRecord, attach: Attach) -> bool:
        """Join a running workload's output (and its stdin if it has one open) from now on, until it ends
        (True) or the caller detaches with ctrl-p ctrl-q on a terminal (False)."""
        ...

    def pause(self, record: WorkloadRecord) -> None:
        """Freeze every process of the workload (a VM: all its vCPUs); observe() then says PAUSED."""
        ...

    def unpause(self, record: WorkloadRecord) -> None: ...

    def exec(self, record: WorkloadRecord, spec: ExecSpec) -> int: ...

    def stats(self, record: WorkloadRecord) -> Stats: ...

    def delete(self, record: WorkloadRecord) -> None: ...


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a caller's fd (attach, exec output); a reader that went away is not an
    error: the workload's log still has everything."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[written:]


class TerminalSize:
    """The caller's terminal size, and whether it changed since last asked: SIGWINCH sets a flag, and the
    attach loops ask between reads (never inside the handler: passing a size on may take a lock).
    Inactive (never reports) when ``fd`` is no terminal or this is not the main thread."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = False
        self._previous: object = None
        self._active = False

    def __enter__(self) -> TerminalSize:
        import signal
        import threading

        if os.isatty(self._fd) and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGWINCH, self._changed)
            self._active = self._pending = True  # the first ask reports the size as it is
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._active:
            signal.signal(signal.SIGWINCH, self._previous)  # type: ignore[arg-type]

    def _changed(self, signum: int, frame: object) -> None:
        self._pending = True

    def changed(self) -> tuple[int, int] | None:
        """(rows, columns) if the size changed since the last call (or this is the first), else None."""
        if not self._pending:
            return None
        self._pending = False
        try:
            size = os.get_terminal_size(self._fd)
        except OSError:
            return None
        return size.lines, size.columns
