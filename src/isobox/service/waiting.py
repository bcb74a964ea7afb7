"""Waiting for a workload to reach a condition (Docker's wait: not-running, next-exit, removed), and one
sample of its resource use with the host's CPU time beside it (what Docker's stats compare).

A workload run with --rm is removed by isobox's exit hook moments after it exits, and its record with it:
the waiter learns the exit code from the driver as the workload ends (the container's exit file, which
conmon writes before it runs the hook), and keeps it to answer after the removal.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from dataclasses import dataclass

from isobox.drivers.base import Driver
from isobox.errors import InvalidArgumentError, NotFoundError, WorkloadError
from isobox.model.record import Stats, WorkloadRecord
from isobox.model.status import Status
from isobox.service import control, workloads
from isobox.service.context import Context

POLL_S = 0.1
IDLE_POLL_S = 0.02  # not running: a record read (SQLite) per look; a start or a removal is seen within this
LATE_EXIT_S = 2.0


class WaitCondition(enum.StrEnum):
    NOT_RUNNING = "not-running"
    NEXT_EXIT = "next-exit"
    REMOVED = "removed"

    @classmethod
    def parse(cls, text: str | None) -> WaitCondition:
        try:
            return cls(text or cls.NOT_RUNNING.value)
        except ValueError:
            choices = ", ".join(c.value for c in cls)
            raise InvalidArgumentError(f"invalid wait condition {text!r}: use {choices}", op="wait") from None


class WaitCancelled(WorkloadError):
    """The waiter went away before the condition was met."""


def _active(record: WorkloadRecord) -> bool:
    return record.status in (Status.RUNNING, Status.PAUSED)


def wait(ctx: Context, workload_id: str, condition: WaitCondition, cancelled: threading.Event) -> int:
    """Block until ``condition`` holds; returns the exit code of the workload's last run."""
    record = workloads.get(ctx, workload_id)
    driver = workloads.driver_for(ctx, record.kind)
    was_active, started_at = _active(record), record.started_at
    code = record.exit_code
    while not cancelled.is_set():
        try:
            record = workloads.get(ctx, workload_id)
        except NotFoundError:
            if condition is WaitCondition.REMOVED:
                # The `die` event holds the code as first recorded: a look at the workload while it was being
                # removed may have seen it vanish instead (and taken it for a death without a code).
                recorded = _recorded_exit_code(ctx, workload_id)
                return recorded if recorded is not None else (code or 0)
            raise
        if _active(record):
            seen = driver.wait(record, POLL_S)  # wakes as the workload ends, before an exit hook removes it
            if seen.status is Status.EXITED and seen.exit_code is not None:
                code = seen.exit_code
            continue
        if record.exit_code is not None:
            code = record.exit_code
        elif record.status is Status.EXITED and code is None:
            # Recorded as exited while the runtime already said "stopped" but conmon had not yet written
            # the exit code: the driver's observation has it a moment later.
            code = _late_exit_code(driver, record, cancelled)
        ended_since = record.status is Status.EXITED and (was_active or record.started_at != started_at)
        if condition is WaitCondition.NOT_RUNNING or (condition is WaitCondition.NEXT_EXIT and ended_since):
            return code or 0
        time.sleep(IDLE_POLL_S)
    raise WaitCancelled("the waiter went away", op="wait", id=workload_id)


def _recorded_exit_code(ctx: Context, workload_id: str) -> int | None:
    """The exit code the workload's last `die` event recorded, if any."""
    event = ctx.records.events.last(workload_id, "die")
    code = event.attribute("exitCode") if event is not None else ""
    return int(code) if code.lstrip("-").isdigit() else None


def _late_exit_code(driver: Driver, record: WorkloadRecord, cancelled: threading.Event) -> int | None:
    deadline = time.monotonic() + LATE_EXIT_S
    while time.monotonic() < deadline and not cancelled.is_set():
        seen = driver.observe(record)
        if seen.exit_code is not None:
            return seen.exit_code
        time.sleep(POLL_S)
    return None


@dataclass(frozen=True)
class Sample:
    record: WorkloadRecord
    stats: Stats
    taken_at: float
    system_cpu_ns: int  # the host's CPU time since boot, all CPUs (/proc/stat), as Docker's system_cpu_usage
    online_cpus: int
    host_memory_bytes: int
    networks: dict[str, dict[str, int]] | None = None  # per interface inside the workload (eth0 …)


def host_cpu_ns() -> int:
    """The first line of /proc/stat (proc(5)): jiffies of every CPU in every state, as nanoseconds."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    return sum(int(f) for f in fields[:8]) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def sample(ctx: Context, name_or_id: str) -> Sample:
    record = workloads.get(ctx, name_or_id)
    stats = control.stats(ctx, record.id) if _active(record) else Stats()
    return Sample(record, stats, time.time(), host_cpu_ns(), os.cpu_count() or 1,
                  os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), _networks(record))


def _networks(record: WorkloadRecord) -> dict[str, dict[str, int]] | None:
    """Traffic of each of the workload's interfaces, from the host end of its veth or TAP."""
    network = record.plan.network
    if network is None or not network.interfaces:
        return None
    from isobox.network import counters

    found = {i.ifname: counters.as_seen_inside(counters.read(i.host_ifname)) for i in network.interfaces}
    return {name: values for name, values in found.items() if values} or None
