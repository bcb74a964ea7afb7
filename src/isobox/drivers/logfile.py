"""The workload log format, shared by both drivers: the CRI "k8s-file" format that conmon writes.

    2026-11-27T03:19:25.123456789+00:00 stdout F a whole line
    2026-11-27T03:19:25.123456789+00:00 stderr P a partial line, continued by the next entry

Containers get it from conmon; the VM driver writes the same lines from the guest's console streams.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from isobox.model.logs import LogEntry, LogOptions


def now_timestamp() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000+00:00"


def format_entry(stream: str, data: bytes, *, partial: bool = False, timestamp: str | None = None) -> bytes:
    return b"%s %s %s %s\n" % (
        (timestamp or now_timestamp()).encode(),
        stream.encode(),
        b"P" if partial else b"F",
        data,
    )


def parse_line(line: bytes) -> LogEntry | None:
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return LogEntry(parts[0].decode(), parts[1].decode(), parts[2] == b"P", content)


def rotated(path: Path) -> list[Path]:
    """The rotated files of a log (path.1, path.2 …), newest first (path.1 is the newest)."""
    numbered = []
    try:
        for candidate in path.parent.iterdir():
            suffix = candidate.name.removeprefix(path.name + ".")
            if candidate.name != suffix and suffix.isdigit() and suffix == str(int(suffix)) and int(suffix) > 0:
                numbered.append((int(suffix), candidate))
    except FileNotFoundError:
        return []
    return [candidate for _, candidate in sorted(numbered)]


def log_files(path: Path) -> list[Path]:
    """Every file of a log, oldest first: the rotated ones, then the current one."""
    return [*reversed(rotated(path)), path]


def read_entries(path: Path) -> Iterator[LogEntry]:
    """Entries of a log across its rotated files, oldest first."""
    for candidate in log_files(path):
        try:
            with open(candidate, "rb") as handle:
                yield from _entries(handle)
        except FileNotFoundError:
            continue


def rotate(path: Path, options: LogOptions, reopen: Callable[[], object] = lambda: None) -> list[Path]:
    """Docker's json-file rotation, keeping the files: path.N-1 … path.1 move one up, path becomes path.1,
    ``reopen`` makes the writer start a new path, and only then the files beyond ``max_file`` (the current
    one counted) are deleted. A writer that still appends to the old file between the rename and
    ``reopen`` writes into path.1, so nothing is lost unless the user's max-file drops that very file.
    Returns the files deleted."""
    for older in rotated(path)[::-1]:
        number = int(older.name.rsplit(".", 1)[1])
        os.replace(older, older.with_name(f"{path.name}.{number + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))
    reopen()
    dropped = [older for older in rotated(path) if int(older.name.rsplit(".", 1)[1]) >= options.max_file]
    for older in dropped:
        older.unlink(missing_ok=True)
    return dropped


def needs_rotation(path: Path, options: LogOptions) -> bool:
    if options.max_size_bytes is None:
        return False
    try:
        return path.stat().st_size >= options.max_size_bytes
    except FileNotFoundError:
        return False


def _entries(handle: BinaryIO) -> Iterator[LogEntry]:
    for line in handle:
        entry = parse_line(line)
        if entry is not None:
            yield entry


class LogWriter:
    """Appends entries, splitting the stream into lines; rotates by ``options`` (never, by default)."""

    def __init__(self, path: Path, options: LogOptions | None = None) -> None:
        self.path = path
        self.options = options or LogOptions()
        self._pending: dict[str, bytes] = {}
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def write(self, stream: str, data: bytes) -> None:
        buffered = self._pending.get(stream, b"") + data
        *lines, rest = buffered.split(b"\n")
        out = b"".join(format_entry(stream, line) for line in lines)
        self._pending[stream] = rest
        if out:
            self._append(out)

    def flush(self) -> None:
        out = b"".join(format_entry(s, rest, partial=True) for s, rest in self._pending.items() if rest)
        self._pending.clear()
        if out:
            self._append(out)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            os.close(self._fd)

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a short write (a nearly full disk) is continued; a full one raises ENOSPC
            view = view[os.write(self._fd, view):]
        if needs_rotation(self.path, self.options):
            rotate(self.path, self.options, self._reopen)

    def _reopen(self) -> None:
        os.close(self._fd)
        self._fd = self._open()
