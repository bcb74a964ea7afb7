"""The workload log format, shared by both drivers: the CRI "k8s-file" format that conmon writes.

    2026-11-27T03:19:25.123456789+00:00 stdout F a whole line
    2026-11-27T03:19:25.123456789+00:00 stderr P a partial line, continued by the next entry

Containers get it from conmon; the VM driver writes the same lines from the guest's console streams.
"""

from __future__ import annotations

import contextlib
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
    """The rotated files of a log (path.1, path.2 …), newest first (path.1 is the newest).

    A rotation renames every file one up; a directory read while it does may miss a name or see one twice
    (readdir(3) gives no guarantee for entries renamed meanwhile), so the directory is read until two
    reads agree."""
    previous: list[tuple[int, Path, int]] | None = None
    for _ in range(20):
        current = _numbered(path)
        if current == previous:
            break
        previous = current
    return [candidate for _, candidate, _ in previous or []]


def _numbered(path: Path) -> list[tuple[int, Path, int]]:
    found = []
    try:
        for candidate in path.parent.iterdir():
            suffix = candidate.name.removeprefix(path.name + ".")
            if candidate.name != suffix and suffix.isdigit() and suffix == str(int(suffix)) and int(suffix) > 0:
                try:
                    found.append((int(suffix), candidate, candidate.stat().st_ino))
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return []
    return sorted(found)


def read_entries(path: Path) -> Iterator[LogEntry]:
    """Entries of a log across its rotated files, oldest first (consistent while it is being rotated)."""
    follower = LogFollower(path)
    try:
        yield from follower.entries()
        while follower.switch():
            yield from follower.entries()
    finally:
        follower.close()


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


class LogFollower:
    """Follows a log through its rotations (tail -F) without losing or repeating a line.

    The current file is read through a descriptor kept open: when the path names another file (the log
    was rotated, and its writer moved to a new file only after it stopped writing the old one), the old
    file is read to its end, then every rotated file not read yet that is older than the new one, oldest
    first (several rotations may have happened between two looks), then the new one. A file is known by
    its inode and first bytes (the inode of a deleted file may be reused; the one held open cannot be)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._rest = b""
        self._read: set[tuple[int, bytes]] = set()
        self._open()
        self._pending = self._older_unread()

    def entries(self) -> Iterator[LogEntry]:
        """The complete lines written since the last call (at first: everything there is)."""
        pending, self._pending = self._pending, []
        yield from pending
        if self._handle is None:
            return
        while data := self._handle.read(1 << 20):
            data = self._rest + data
            cut = data.rfind(b"\n") + 1
            self._rest = data[cut:]
            # Entries end at "\n" only: a "\r" is content (a terminal's "\r\n", a progress bar's "\r"), which
            # bytes.splitlines would take for a line break.
            for line in data[: cut - 1].split(b"\n") if cut else ():
                entry = parse_line(line)
                if entry is not None:
                    yield entry

    def switch(self) -> bool:
        """Move to the file the path names now if that is another one (True); what the next `entries`
        returns first is the rest of the old file and the rotated files in between."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed aside, the writer not yet moved: the old file may still grow
        if self._handle is not None:
            held = os.fstat(self._handle.fileno())
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                return False
            self._pending = list(self.entries())
            self._read.add(_identity(self._handle))
            self._handle.close()
        self._open()
        self._pending += self._older_unread()
        return True

    def _older_unread(self) -> list[LogEntry]:
        """The rotated files not read yet that are older than the one held, oldest first. The held one may
        itself have been rotated (and newer ones after it) since it was opened: those newer ones are read
        at a later switch, after it."""
        held = os.fstat(self._handle.fileno()).st_ino if self._handle is not None else None
        found: list[LogEntry] = []
        with contextlib.ExitStack() as stack:
            for inode, handle in reversed(_open_rotated(self.path, stack)):
                if inode == held:
                    break
                key = _identity(handle)
                if key not in self._read:
                    self._read.add(key)
                    found += _entries(handle)
        return found

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _open(self) -> None:
        try:
            self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open across calls, closed in switch()
        except FileNotFoundError:
            self._handle = None
        self._rest = b""


def _open_rotated(path: Path, stack: contextlib.ExitStack) -> list[tuple[int, BinaryIO]]:
    """The rotated files opened, newest first, as one consistent set: each opened file is the one its name
    had when the directory was read (a rotation renaming them meanwhile makes it read again)."""
    for _ in range(50):
        opened: list[tuple[int, BinaryIO]] = []
        with contextlib.ExitStack() as attempt:
            for _, candidate, inode in _numbered(path):
                try:
                    handle = attempt.enter_context(open(candidate, "rb"))
                except FileNotFoundError:
                    break
                if os.fstat(handle.fileno()).st_ino != inode:
                    break
                opened.append((inode, handle))
            else:
                stack.enter_context(attempt.pop_all())
                return opened
    return []


def _identity(handle: BinaryIO) -> tuple[int, bytes]:
    """A file's inode and first bytes (its first entry's timestamp), the position left as it was."""
    position = handle.tell()
    handle.seek(0)
    head = handle.read(64)
    handle.seek(position)
    return os.fstat(handle.fileno()).st_ino, head
