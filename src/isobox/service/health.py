"""Health checks, run by the engine's supervisor (service/supervisor.py): each probe is an exec in the workload
(a container's or a VM's alike), its result folded into the record's HealthState by Docker's rules
(model/health.py), and a change of status written as a `health_status: …` event.

The supervisor's task only decides which probes are due (from the records, no driver call); each due
probe runs in a thread of its own with its own Context, so a slow probe delays no other workload. One
probe runs at a time per workload. A probe past its timeout counts as failed at once (exit code -1);
its exec is left to end by itself, and the workload's next probe waits for it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

from isobox.errors import InvalidStateError, NotFoundError
from isobox.model.health import HealthCheck, Probe, after_probe, next_due, truncate_output
from isobox.model.record import WorkloadRecord
from isobox.model.status import Status
from isobox.model.streams import Attach, ExecSpec
from isobox.service import control, events
from isobox.service.context import Context, open_context
from isobox.service.workloads import locked_workload

log = logging.getLogger(__name__)

_busy: set[str] = set()  # workloads with a probe in flight
_lock = threading.Lock()


def run_due(ctx: Context) -> None:
    """Start the probes that are due (the supervisor calls this every half second)."""
    now = time.time()
    for record in ctx.records.workloads.all():
        check = record.plan.health
        if check is None or record.status is not Status.RUNNING or record.started_at is None:
            continue
        if now < next_due(check, record.health, record.started_at, now):
            continue
        with _lock:
            if record.id in _busy:
                continue
            _busy.add(record.id)
        threading.Thread(target=_probe_in_thread, args=(ctx.paths.root, record.id), name="isobox-health",
                         daemon=True).start()


def _probe_in_thread(root: Path | None, workload_id: str) -> None:
    try:
        with open_context(root) as ctx:
            probe_once(ctx, workload_id)
    except Exception:  # a failing probe machinery must not end the engine
        log.exception("health check of %s failed", workload_id[:12])
    finally:
        with _lock:
            _busy.discard(workload_id)


def probe_once(ctx: Context, workload_id: str) -> None:
    """Run one probe of the workload and record its result."""
    from isobox.service import workloads

    record = workloads.get(ctx, workload_id)
    check = record.plan.health
    if check is None or record.status is not Status.RUNNING:
        return
    probe = run_probe(ctx, record, check)
    record_probe(ctx, record, check, probe)


def run_probe(ctx: Context, record: WorkloadRecord, check: HealthCheck) -> Probe:
    """The check's command as an exec, its output captured (the first 4096 bytes), bounded by its timeout."""
    read_fd, write_fd = os.pipe()
    captured = bytearray()
    result: dict[str, int] = {}
    failure: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(4096):
                if len(captured) < 8192:
                    captured.extend(chunk)

    def execute() -> None:
        try:
            with open_context(ctx.paths.root) as own:
                result["code"] = control.exec(own, record.id, ExecSpec(argv=check.argv()),
                                              Attach(stdin=None, stdout=write_fd, stderr=write_fd),
                                              exec_id=f"health-{time.monotonic_ns():x}")
        except BaseException as exc:
            failure.append(exc)
        finally:
            os.close(write_fd)
            done.set()

    started = time.time()
    collector = threading.Thread(target=reader, name="isobox-health-output", daemon=True)
    collector.start()
    threading.Thread(target=execute, name="isobox-health-exec", daemon=True).start()
    if not done.wait(check.limit_s):
        return Probe(started, time.time(), -1, f"Health check exceeded timeout ({check.limit_s:g}s)")
    collector.join(timeout=1.0)
    ended = time.time()
    if failure:
        return Probe(started, ended, -1, str(failure[0]))
    return Probe(started, ended, result.get("code", -1), truncate_output(bytes(captured)))


def record_probe(ctx: Context, record: WorkloadRecord, check: HealthCheck, probe: Probe) -> None:
    """Fold the probe into the record (if the workload still runs the same run) and report a change."""
    from isobox.service import workloads

    with locked_workload(ctx, record.id):
        try:
            current = ctx.records.workloads.get(record.id)
        except NotFoundError:
            return
        if current.status is not Status.RUNNING or current.started_at != record.started_at:
            return
        assert current.started_at is not None
        state = after_probe(check, current.health, probe, current.started_at)
        updated = replace(current, health=state)
        try:
            workloads.save(ctx, updated, expect=Status.RUNNING)
        except (InvalidStateError, NotFoundError):
            return
    previous = current.health.status if current.health is not None else None
    if state.status is not previous:
        events.container(ctx, updated, f"health_status: {state.status.value}")
    log.debug("health of %s: %s (exit %d)", record.name, state.status.value, probe.exit_code)
