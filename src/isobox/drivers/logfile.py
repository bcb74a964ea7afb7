"""The workload log format, shared by both drivers: the CRI "k8s-file" format that conmon writes.

    2026-11-27T03:19:25.123456789+00:00 stdout F a whole line
    2026-11-27T03:19:25.123456789+00:00 stderr P a partial line, continued by the next entry

Containers get it from conmon; the VM driver writes the same lines from the guest's console streams.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from isobox.model.logs import LogEntry


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


def read_entries(path: Path) -> Iterator[LogEntry]:
    """Entries of a log and of its rotated predecessor (path.1), oldest first."""
    for candidate in (path.with_name(path.name + ".1"), path):
        try:
            with open(candidate, "rb") as handle:
                yield from _entries(handle)
        except FileNotFoundError:
            continue


def _entries(handle: BinaryIO) -> Iterator[LogEntry]:
    for line in handle:
        entry = parse_line(line)
        if entry is not None:
            yield entry


class LogWriter:
    """Appends entries, splitting the stream into lines; rotates to path.1 past max_bytes."""

    def __init__(self, path: Path, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._pending: dict[str, bytes] = {}
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

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
        self.flush()
        os.close(self._fd)

    def _append(self, data: bytes) -> None:
        os.write(self._fd, data)
        if os.fstat(self._fd).st_size > self.max_bytes:
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
