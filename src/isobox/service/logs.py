"""Reading a workload's log: --since, --tail, --follow, the same for both drivers."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from isobox.drivers.logfile import parse_line, read_entries
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
    record = workloads.get(ctx, name)
    path = Path(record.plan.log_path)
    # A VM's output reaches the host as raw files that its driver turns into log entries when asked.
    driver = workloads.driver_for(ctx, record.kind)
    driver.sync_logs(record)
    limit = None if tail in ("all", "") else int(tail)
    cutoff = parse_since(since) if since else None
    yield from select(read_entries(path), since=cutoff, tail=limit)
    if not follow:
        return
    offset = path.stat().st_size if path.exists() else 0
    finished = False
    while True:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if size < offset:  # rotated
            offset = 0
        if size > offset:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(size - offset)
            complete = data[: data.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.splitlines():
                entry = parse_line(line)
                if entry is not None:
                    yield entry
            continue
        if finished:
            return
        # One more pass after the workload ended, for what it wrote last.
        finished = workloads.get(ctx, record.id).status not in (Status.RUNNING, Status.PAUSED, Status.CREATED)
        if not finished:
            time.sleep(FOLLOW_POLL_S)
        driver.sync_logs(record)
