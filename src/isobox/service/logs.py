"""Reading a workload's log: --since, --tail, --follow, the same for both drivers."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from isobox.drivers.logfile import LogFollower, read_entries
from isobox.errors import InvalidArgumentError
from isobox.model.logs import LogEntry, parse_timestamp
from isobox.model.record import WorkloadRecord
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
    reader = LogFollower(path)
    try:
        yield from select(reader.entries(), since=cutoff, tail=limit)
        yield from _follow(ctx, record, reader)
    finally:
        reader.close()


def _follow(ctx: Context, record: WorkloadRecord, reader: LogFollower) -> Iterator[LogEntry]:
    """What the workload writes next, through rotations, until it ends (and what it wrote last)."""
    driver = workloads.driver_for(ctx, record.kind)
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
