"""A workload's life after create: signals, stop, pause, restart, attach, exec, wait, stats, top, rename; what
happens after it exits (--rm, restart policies, `system boot`) is service/restarts.py."""

from __future__ import annotations

import logging
from dataclasses import replace

from isobox.drivers import base as drivers
from isobox.errors import IsoboxError
from isobox.model import ids
from isobox.model.capability import Capability
from isobox.model.record import ProcessTable, RunResult, Stats, WorkloadRecord
from isobox.model.spec import RestartPolicy
from isobox.model.status import Op, Status, require
from isobox.model.streams import Attach, ExecSpec
from isobox.service import events
from isobox.service.context import Context
from isobox.service.workloads import bridged, driver_for, get, locked_workload, refresh, save, start

log = logging.getLogger(__name__)


def attach(ctx: Context, name_or_id: str, streams: Attach) -> int | None:
    """Join a running workload's streams; its exit code once it ended, None if the caller detached."""
    record = get(ctx, name_or_id)
    require(Op.ATTACH, record.status, workload=record.name)
    driver = driver_for(ctx, record.kind)
    if not driver.attach(record, streams):
        return None
    driver.wait(record)
    return refresh(ctx, record).exit_code


def pause(ctx: Context, name_or_id: str) -> WorkloadRecord:
    """Freeze a running workload (its processes, or a VM's vCPUs) until unpause."""
    return _set_frozen(ctx, name_or_id, frozen=True)


def unpause(ctx: Context, name_or_id: str) -> WorkloadRecord:
    return _set_frozen(ctx, name_or_id, frozen=False)


def _set_frozen(ctx: Context, name_or_id: str, *, frozen: bool) -> WorkloadRecord:
    found = ctx.records.workloads.get(name_or_id)
    with locked_workload(ctx, found.id):
        record = get(ctx, found.id)
        require(Op.PAUSE if frozen else Op.UNPAUSE, record.status, workload=record.name)
        driver = driver_for(ctx, record.kind)
        (driver.pause if frozen else driver.unpause)(record)
        updated = replace(record, status=Status.PAUSED if frozen else Status.RUNNING)
        save(ctx, updated, expect=record.status)
    events.container(ctx, updated, "pause" if frozen else "unpause")
    return updated


def thaw(ctx: Context, record: WorkloadRecord) -> None:
    """A frozen process handles no signal, not even SIGKILL under the v1 freezer: stop, kill and rm -f
    resume a paused workload first (as Docker does)."""
    if record.status is Status.PAUSED:
        try:
            driver_for(ctx, record.kind).unpause(record)
        except IsoboxError as exc:
            log.warning("could not resume %s before stopping it: %s", record.name, exc)


def stop(ctx: Context, name_or_id: str, *, timeout_s: float | None = None) -> WorkloadRecord:
    """Stop a running workload (its stop signal, then SIGKILL after the timeout). Stopping one that does not
    run succeeds and changes nothing, as Docker's."""
    found = ctx.records.workloads.get(name_or_id)
    with locked_workload(ctx, found.id):
        record = get(ctx, found.id)
        require(Op.STOP, record.status, workload=record.name)
        if record.status not in (Status.RUNNING, Status.PAUSED):
            if record.plan.restart.policy is not RestartPolicy.NO and not record.stopped_by_user:
                # Between two runs of a restart policy (its back-off): stopping it cancels the next, as Docker's.
                record = replace(record, stopped_by_user=True)
                save(ctx, record, expect=record.status)
            return record
        thaw(ctx, record)
        # Remembered before the signal: when conmon's exit command runs, it must know not to restart it.
        save(ctx, replace(record, stopped_by_user=True), expect=record.status)
        driver_for(ctx, record.kind).stop(record, record.plan.stop_timeout_s if timeout_s is None else timeout_s)
        stopped = refresh(ctx, replace(record, stopped_by_user=True))
    events.container(ctx, stopped, "stop")
    return stopped


def kill(ctx: Context, name_or_id: str, signal: int) -> WorkloadRecord:
    found = ctx.records.workloads.get(name_or_id)
    with locked_workload(ctx, found.id):
        record = get(ctx, found.id)
        require(Op.KILL, record.status, workload=record.name)
        thaw(ctx, record)
        record = replace(record, status=Status.RUNNING, stopped_by_user=True)
        save(ctx, record)
        driver_for(ctx, record.kind).kill(record, signal)
    events.container(ctx, record, "kill", signal=str(signal))
    return record


def restart(ctx: Context, name_or_id: str, *, timeout_s: float | None = None) -> RunResult:
    record = get(ctx, name_or_id)
    require(Op.RESTART, record.status, workload=record.name)
    record = stop(ctx, record.id, timeout_s=timeout_s)
    return start(ctx, record.id)


def rename(ctx: Context, name_or_id: str, new_name: str) -> WorkloadRecord:
    """Rename a workload in any state; on its networks the old name stops resolving and the new one starts."""
    new_name = ids.validate_name(new_name.removeprefix("/"))
    found = ctx.records.workloads.get(name_or_id)
    with locked_workload(ctx, found.id):
        record = get(ctx, found.id)
        require(Op.RENAME, record.status, workload=record.name)
        if record.name == new_name:
            return record
        renamed = replace(record, name=new_name, plan=replace(record.plan, name=new_name))
        save(ctx, renamed)  # the UNIQUE name column refuses a taken name (ConflictError)
    events.container(ctx, renamed, "rename", oldName=f"/{record.name}")
    if bridged(record.plan):
        from isobox.service import networks

        networks.rename_endpoints(ctx, record.id, new_name)
    return renamed


# ---- inside a workload ------------------------------------------------------------------------


def exec(ctx: Context, name_or_id: str, spec: ExecSpec, streams: Attach | None = None, *, exec_id: str = "") -> int:
    """A further process in a running workload, with ``streams`` (default: this process's stdio)."""
    record = get(ctx, name_or_id)
    require(Op.EXEC, record.status, workload=record.name)
    driver = driver_for(ctx, record.kind)
    drivers.require(driver, record, Capability.EXEC, op="exec")
    if spec.tty and not spec.detach:
        drivers.require(driver, record, Capability.EXEC_TTY, op="exec")
    elif spec.interactive and not spec.detach:
        drivers.require(driver, record, Capability.EXEC_STDIN, op="exec")
    command = " ".join(spec.argv)
    events.container(ctx, record, f"exec_start: {command}", execID=exec_id)
    code = driver.exec(record, spec, streams or Attach())
    events.container(ctx, record, "exec_die", execID=exec_id, exitCode=str(code))
    return code


def resize(ctx: Context, name_or_id: str, rows: int, columns: int) -> None:
    """A new size for the terminal of a running workload started with -t (Docker's resize)."""
    record = get(ctx, name_or_id)
    require(Op.ATTACH, record.status, workload=record.name)
    if not record.plan.process.tty:
        return
    driver_for(ctx, record.kind).resize(record, rows, columns)


def wait(ctx: Context, name_or_id: str, timeout_s: float | None = None) -> WorkloadRecord:
    record = get(ctx, name_or_id)
    if record.status in (Status.RUNNING, Status.PAUSED):
        driver_for(ctx, record.kind).wait(record, timeout_s)
    return refresh(ctx, record)


def stats(ctx: Context, name_or_id: str) -> Stats:
    record = get(ctx, name_or_id)
    return driver_for(ctx, record.kind).stats(record)


def top(ctx: Context, name_or_id: str) -> ProcessTable:
    """The processes of a running workload (a VM's: those of its guest, through the agent)."""
    record = get(ctx, name_or_id)
    if record.status not in (Status.RUNNING, Status.PAUSED):
        require(Op.ATTACH, record.status, workload=record.name)  # "cannot … it is exited"
    driver = driver_for(ctx, record.kind)
    drivers.require(driver, record, Capability.GUEST_PROCESSES, op="top")
    return driver.top(record)


def console(ctx: Context, name_or_id: str, streams: Attach) -> None:
    """Bridge ``streams`` to the serial console of a VM booted from a disk image, until Ctrl-]."""
    record = get(ctx, name_or_id)
    require(Op.ATTACH, record.status, workload=record.name)
    driver = driver_for(ctx, record.kind)
    drivers.require(driver, record, Capability.CONSOLE, op="console")
    driver.console(record, streams)
