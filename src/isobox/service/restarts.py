"""Restart policies (`--restart`): whether an exited workload starts again, and after which back-off.

Who restarts what:
- a detached container whose conmon saw it exit: conmon's exit command (`isobox system on-exit`, `on_exit`
  here) waits the back-off and starts it again;
- a workload whose exit nobody handled (its conmon was killed, a VM, whose QEMU has no exit command): the
  engine's exits task (`reconcile`, level-triggered: it restarts once the back-off has passed), and
  without an engine the next `isobox system boot`.

The back-off is Docker's (model.spec.next_restart_delay_s): 100 ms, doubling, at most a minute, back to
100 ms after a run of 10 s. The count and the delay are in the record (RestartCount in inspect). One lock
per workload (`restart-ID`) makes one process handle one exit: conmon's exit command holds it while it
waits, and `reconcile` passes over a workload whose lock is held.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from isobox.errors import IsoboxError, NotFoundError
from isobox.model.record import WorkloadRecord
from isobox.model.spec import RestartPolicy, next_restart_delay_s
from isobox.model.status import Status
from isobox.service import workloads
from isobox.service.context import Context
from isobox.state.locks import locked

log = logging.getLogger(__name__)

NAME = "exits"
PERIOD_S = 1.0


def should_restart(record: WorkloadRecord) -> bool:
    policy = record.plan.restart
    if record.stopped_by_user or policy.policy is RestartPolicy.NO:
        return False
    if policy.policy is RestartPolicy.ON_FAILURE:
        return (record.exit_code or 0) != 0 and (policy.max_retries == 0 or record.restart_count < policy.max_retries)
    return True


def on_exit(ctx: Context, workload_id: str) -> None:
    """Run by conmon when a detached container exits: --rm, or the restart policy after its back-off."""
    try:
        record = workloads.get(ctx, workload_id)
    except NotFoundError:
        return
    if record.plan.remove:
        workloads.remove(ctx, record.id, force=True)
        return
    restart(ctx, record, wait=True)


def reconcile(ctx: Context) -> list[WorkloadRecord]:
    """One pass of the exits task: record the exits nobody noticed (`workloads.list_workloads` refreshes
    every record from what its driver sees) and restart, by policy, the workloads whose back-off has
    passed. Returns the workloads started."""
    started = []
    for record in workloads.list_workloads(ctx, all=True):
        if record.status is Status.EXITED and should_restart(record) and restart(ctx, record, wait=False):
            started.append(record)
    return started


def restart(ctx: Context, record: WorkloadRecord, *, wait: bool) -> bool:
    """Start an exited workload again if its policy says so: after sleeping the back-off (``wait``), or only
    if the back-off has already passed. False if it was not (another process handles this exit, it is not
    due, or it could not start: the reason is logged, and the next attempt waits longer)."""
    try:
        with locked(ctx.paths.locks, f"restart-{record.id}", wait=False):
            return _restart(ctx, record.id, wait=wait)
    except BlockingIOError:
        return False


def _restart(ctx: Context, workload_id: str, *, wait: bool) -> bool:
    try:
        record = workloads.get(ctx, workload_id)
    except NotFoundError:
        return False
    if record.status is not Status.EXITED or not should_restart(record):
        return False
    ran_s = (record.finished_at or 0.0) - (record.started_at or 0.0)
    delay_s = next_restart_delay_s(record.restart_delay_s, max(ran_s, 0.0))
    due = (record.finished_at or time.time()) + delay_s
    if not wait and time.time() < due:
        return False
    with workloads.locked_workload(ctx, record.id):
        current = workloads.get(ctx, record.id)
        if current.status is not Status.EXITED or current.finished_at != record.finished_at:
            return False  # started (or stopped, removed) by someone else meanwhile
        workloads.save(ctx, replace(current, restart_count=current.restart_count + 1, restart_delay_s=delay_s),
                       expect=Status.EXITED)
    time.sleep(max(0.0, due - time.time()))
    try:
        current = workloads.get(ctx, record.id)
        if current.status is not Status.EXITED or current.stopped_by_user:
            return False  # `stop` during the back-off cancels the restart, as Docker's
        workloads.start(ctx, record.id)
    except IsoboxError as exc:
        log.warning("restarting %s by its policy: %s", record.name, exc)
        return False
    return True


def boot(ctx: Context) -> tuple[list[WorkloadRecord], list[tuple[WorkloadRecord, IsoboxError]]]:
    """After the host restarted: start again the exited workloads whose policy says so, as Docker's daemon
    does when it starts and Podman's podman-restart.service does at boot: `always` ones (even stopped by
    hand, as Docker's), and `unless-stopped` and `on-failure` ones that ended without being stopped (the
    host's end, or a monitor that died). Nothing else runs isobox at boot: the unit in contrib/systemd calls
    this. Returns (started, failed with the reason)."""
    started: list[WorkloadRecord] = []
    failed: list[tuple[WorkloadRecord, IsoboxError]] = []
    for record in reversed(workloads.list_workloads(ctx, all=True)):  # oldest first, as they were created
        wanted = record.plan.restart.policy is RestartPolicy.ALWAYS or should_restart(record)
        if record.status is not Status.EXITED or not wanted:
            continue
        try:
            started.append(workloads.start(ctx, record.id).record)
        except IsoboxError as exc:
            failed.append((record, exc))
    return started, failed


TASK = (NAME, PERIOD_S, reconcile)
