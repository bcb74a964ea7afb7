"""Reading a workload's log: --since, --tail, --follow, the same for both drivers."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections import deque
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from isobox.drivers.logfile import parse_line, read_entries, rotated
from isobox.errors import InvalidArgumentError
from isobox.model.logs import LogEntry, parse_timestamp
from isobox.model.status import Status
from isobox.service import workloads
from isobox.service.context import Context

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FOLLOW_POLL_S = 0.1


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """'10m', '2h', '30s' (ago), a Unix time, or an RFC 3339 time."""
    current = now or dt.datetime.now(dt.UTC)
    match = _DURATION.match(text.strip())
    if match:
        return current - dt.timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
    try:
        return dt.datetime.fromtimestamp(float(text), dt.UTC)
    except ValueError:
        pass
    try:
        parsed = parse_timestamp(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidArgumentError(f"invalid --since {text!r}: use 10m, 2h or an RFC 3339 time", op="logs") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def select(entries: Iterator[LogEntry], *, since: dt.datetime | None, tail: int | None) -> Iterator[LogEntry]:
    if since is not None:
        entries = (e for e in entries if e.time >= since)
    if tail is not None:
        return iter(deque(entries, maxlen=tail)) if tail > 0 else iter(())
    return entries


def read(
    ctx: Context, name: str, *, follow: bool = False, since: str | None = None, tail: str = "all"
) -> Iterator[LogEntry]:
    """The workload's log across its rotated files, oldest first; with ``follow``, then what it writes next,
    through rotations (tail -F), until it ends."""
    record = workloads.get(ctx, name)
    path = Path(record.plan.log_path)
    # A VM's output reaches the host as raw files that its driver turns into log entries when asked; a
    # container's log is rotated here too when --log-opt says so (see service/logrotate.py).
    driver = workloads.driver_for(ctx, record.kind)
    driver.sync_logs(record)
    limit = _tail(tail)
    cutoff = parse_since(since) if since else None
    if not follow:
        yield from select(read_entries(path), since=cutoff, tail=limit)
        return
    reader = _Follower(path)
    earlier = chain.from_iterable(_file_entries(p) for p in reversed(rotated(path)))
    yield from select(chain(earlier, reader.entries()), since=cutoff, tail=limit)
    finished = False
    while True:
        moved = False
        for entry in reader.entries():
            moved = True
            yield entry
        if moved or reader.switch():
            continue
        if finished:
            return
        # One more pass after the workload ended, for what it wrote last.
        finished = workloads.get(ctx, record.id).status not in (Status.RUNNING, Status.PAUSED, Status.CREATED)
        if not finished:
            time.sleep(FOLLOW_POLL_S)
        driver.sync_logs(record)


def _tail(text: str) -> int | None:
    if text in ("all", ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidArgumentError(f"invalid --tail {text!r}: a number of lines, or all", op="logs") from None


def _file_entries(path: Path) -> Iterator[LogEntry]:
    try:
        with open(path, "rb") as handle:
            for line in handle:
                entry = parse_line(line)
                if entry is not None:
                    yield entry
    except FileNotFoundError:
        return


class _Follower:
    """Reads one log file through a descriptor kept open, so a rotation (the file renamed, the writer moving
    to a new file at the path) loses nothing: the old file is read to its end before the new one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._rest = b""
        self._drained: list[LogEntry] = []
        self._open()

    def _open(self) -> None:
        try:
            self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open across calls, closed in switch()
        except FileNotFoundError:
            self._handle = None
        self._rest = b""

    def entries(self) -> Iterator[LogEntry]:
        """The complete lines written since the last call."""
        drained, self._drained = self._drained, []
        yield from drained
        if self._handle is None:
            return
        while data := self._handle.read(1 << 20):
            data = self._rest + data
            cut = data.rfind(b"\n") + 1
            self._rest = data[cut:]
            for line in data[:cut].splitlines():
                entry = parse_line(line)
                if entry is not None:
                    yield entry

    def switch(self) -> bool:
        """If the path now names another file than the one read (rotated), move to it; True if so. The
        writer made the new file only after it stopped writing the old one, whose end is read first (what
        the next `entries` returns before the new file's lines)."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed aside, the writer not yet moved: the old file may still grow
        if self._handle is not None:
            held = os.fstat(self._handle.fileno())
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                return False
            self._drained = list(self.entries())
            self._handle.close()
        self._open()
        return True
