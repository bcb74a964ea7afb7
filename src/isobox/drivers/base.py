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
  given stdio, returning its exit code; ``stats`` reads resource usage; ``top`` lists its processes.
- Snapshots, clones, commit and the console are in the protocol too; what one kind (or one workload)
  cannot do, ``capabilities`` says with the reason, and the operation raises UnsupportedError with it.
- ``delete(record)`` removes every trace (processes, mounts, cgroups, TAP, sockets, files), is
  idempotent and succeeds on a half-created or crashed workload.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from isobox.errors import UnsupportedError
from isobox.model.archive import PathStat
from isobox.model.capability import Capability
from isobox.model.plan import RunPlan
from isobox.model.record import Observation, ProcessTable, Stats, WorkloadRecord
from isobox.model.snapshot import SnapshotInfo
from isobox.model.spec import Kind, Resources
from isobox.model.streams import Attach, ExecSpec


@dataclass(frozen=True)
class Created:
    """What `create` tells the service to keep in the record."""

    facts: dict[str, str]  # shown by inspect: the runtime, the accelerator and why …
    exec_devices: bool = False  # a VM with the exec console and input port (WorkloadRecord.exec_devices)


class Driver(Protocol):
    kind: Kind

    def create(self, plan: RunPlan) -> Created:
        """Prepare everything a start needs; nothing runs yet."""
        ...

    def missing_capabilities(self, record: WorkloadRecord) -> dict[Capability, str]:
        """The capabilities this workload lacks, each with the reason (empty: it has them all)."""
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

    def console(self, record: WorkloadRecord, attach: Attach) -> None:
        """Bridge the caller's terminal to the workload's serial console until the caller detaches
        (Ctrl-]) or the workload ends (Capability.CONSOLE)."""
        ...

    def pause(self, record: WorkloadRecord) -> None:
        """Freeze every process of the workload (a VM: all its vCPUs); observe() then says PAUSED."""
        ...

    def unpause(self, record: WorkloadRecord) -> None: ...

    def exec(self, record: WorkloadRecord, spec: ExecSpec, streams: Attach) -> int:
        """A further process in the running workload, with ``streams`` as its stdio; its exit code."""
        ...

    def stats(self, record: WorkloadRecord) -> Stats: ...

    def top(self, record: WorkloadRecord) -> ProcessTable:
        """The running workload's processes (a VM: the guest's, through its agent)."""
        ...

    def sync_logs(self, record: WorkloadRecord) -> None:
        """Bring plan.log_path up to date with what the workload wrote (a no-op where the log is written
        directly, as conmon does)."""
        ...

    def snapshot_create(self, record: WorkloadRecord, name: str) -> SnapshotInfo:
        """Save the workload's files (and, while it runs and where possible, its processes or memory)."""
        ...

    def snapshot_list(self, record: WorkloadRecord) -> list[SnapshotInfo]: ...

    def snapshot_restore(
        self, record: WorkloadRecord, name: str, *, during_create: Callable[[], None] | None = None
    ) -> int | None:
        """Go back to a snapshot. A snapshot with processes or memory resumes the workload (its pid is
        returned); a files-only one replaces the files (a workload that ran is started again: its pid)."""
        ...

    def snapshot_remove(self, record: WorkloadRecord, name: str) -> None: ...

    def clone_plan(self, source: WorkloadRecord, plan: RunPlan) -> RunPlan:
        """The plan of a clone of ``source`` (``plan``: the source's, with the clone's id, name and
        directory) (Capability.CLONE)."""
        ...

    def snapshot_clone(self, source: WorkloadRecord, name: str, target: WorkloadRecord) -> int:
        """Start ``target`` (created from clone_plan) from ``source``'s snapshot; its pid."""
        ...

    def commit_layer(self, record: WorkloadRecord, out: BinaryIO, skip: frozenset[str]) -> None:
        """Write the workload's changes to its image as an uncompressed layer tar (whiteouts for deletions),
        leaving out the paths in ``skip`` (Capability.COMMIT)."""
        ...

    def replan(self, record: WorkloadRecord) -> None:
        """The plan's networks changed (connect, disconnect): bring what create prepared in line with it (a
        container's /etc/hosts and resolv.conf, in place; a stopped VM's run script for its next boot)."""
        ...

    def resize(self, record: WorkloadRecord, rows: int, columns: int) -> None:
        """A new size for the terminal of a workload started with -t."""
        ...

    def stat_path(self, record: WorkloadRecord, path: str) -> PathStat:
        """What ``path`` is inside the workload (its last component not followed) (Capability.COPY)."""
        ...

    def copy_from(self, record: WorkloadRecord, path: str, out: BinaryIO) -> PathStat:
        """Write ``path`` (a file or a tree, named by its last component) to ``out`` as a tar stream; symlinks
        inside the workload are resolved inside it, never on the host (Capability.COPY)."""
        ...

    def copy_to(self, record: WorkloadRecord, directory: str, tar: BinaryIO) -> None:
        """Unpack the tar stream ``tar`` into the workload's existing ``directory`` (Capability.COPY)."""
        ...

    def update_resources(self, record: WorkloadRecord, resources: Resources) -> None:
        """Apply new limits (`isobox update`): at once where the workload runs and the kind can, else from its
        next start; what cannot change now is refused with UnsupportedError before anything changed."""
        ...

    def export_filesystem(self, record: WorkloadRecord, out: BinaryIO) -> None:
        """Write the workload's whole file system (its image with its changes, without volumes) as an
        uncompressed tar (`isobox export`); a VM's only once it is stopped, as for commit."""
        ...

    def delete(self, record: WorkloadRecord) -> None: ...


def require(driver: Driver, record: WorkloadRecord, capability: Capability, *, op: str) -> None:
    """Raise UnsupportedError (with the driver's reason) unless the workload has ``capability``."""
    reason = driver.missing_capabilities(record).get(capability)
    if reason is not None:
        raise UnsupportedError(f"{capability.value} is not available for {record.name}: {reason}", op=op,
                               id=record.name)


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


class PolledTerminalSize(TerminalSize):
    """A terminal handed over by the caller (the API's pseudo-terminal, in a worker thread: no SIGWINCH handler
    can be set there): its size is read again at each ask, and reported when it changed."""

    def __enter__(self) -> PolledTerminalSize:
        self._active = os.isatty(self._fd)
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def changed(self) -> tuple[int, int] | None:
        if not self._active:
            return None
        try:
            size = os.get_terminal_size(self._fd)
        except OSError:
            return None
        current = (size.lines, size.columns)
        if current == self._previous or not all(current):
            return None
        self._previous = current
        return current

