"""Workloads (containers and VMs alike): create, start, run, remove — spec → plan → driver, with records and
rollback. Signals, pause, exec, attach and the rest of a running workload's life are in control.py.

Every operation that changes a workload holds its lock, reads the driver's observation of the real state
first (a workload may have exited while no isobox process was alive), checks the lifecycle table
(model/status.py) and records the outcome through the workload repository (state/workloads.py).

Creating reserves the name (and a --userns=auto range) with the record's first INSERT, before anything is
made on the host; the record then says CREATING until everything is made. A create killed half-way leaves
that record, which `ps -a` shows and `rm -f` or `system prune` finish: every volume, address and interface
made so far is found from the records (the plan, the network endpoints), never lost.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace

from isobox.config import policy_path
from isobox.drivers.base import Driver
from isobox.errors import (
    CommandError,
    HostError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from isobox.linux.tree import discard_tree
from isobox.model import ids
from isobox.model.health import HealthState
from isobox.model.network import DEFAULT_NETWORK, NetworkMode, NetworkPlan, network_mode
from isobox.model.plan import RunPlan
from isobox.model.pull import PullPolicy
from isobox.model.record import Observation, RunResult, WorkloadRecord
from isobox.model.spec import Kind, WorkloadSpec
from isobox.model.status import Op, Status, require
from isobox.model.streams import Attach
from isobox.service import planning
from isobox.service.context import Context
from isobox.state import locks
from isobox.state.locks import locked

log = logging.getLogger(__name__)


def driver_for(ctx: Context, kind: Kind) -> Driver:
    cached = ctx._drivers.get(kind.value)
    if cached is not None:
        return cached  # type: ignore[return-value]
    driver: Driver
    if kind is Kind.VM:
        from isobox.drivers.vm.driver import VMDriver

        driver = VMDriver(ctx.paths)
    else:
        from isobox.drivers.container.driver import ContainerDriver

        driver = ContainerDriver(ctx.paths, exit_command=_exit_command(ctx))
    ctx._drivers[kind.value] = driver
    return driver


def _exit_command(ctx: Context) -> tuple[str, ...]:
    """What conmon runs when a container exits: isobox's own bookkeeping (--rm, restart policies)."""
    root = ("--root", str(ctx.paths.root)) if ctx.paths.root else ()
    # conmon runs it with an environment of its own: the same isobox code must run it as runs now.
    search_path = os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    env = ("/usr/bin/env", f"PYTHONPATH={search_path}") if search_path else ()
    return (*env, sys.executable, "-m", "isobox.cli.main", *root, "system", "on-exit")


# ---- records ----------------------------------------------------------------------------------


def save(ctx: Context, record: WorkloadRecord, *, expect: Status | None = None) -> None:
    """Persist a changed record (with ``expect``: only if the stored one still has that status)."""
    ctx.records.workloads.save(record, expect=expect)


def refresh(ctx: Context, record: WorkloadRecord) -> WorkloadRecord:
    """Bring the record in line with what the driver sees (exit codes written while isobox was away)."""
    if record.status in (Status.CREATING, Status.CREATED, Status.REMOVING, Status.EXITED):
        return record
    seen = driver_for(ctx, record.kind).observe(record)
    if seen.status is record.status or _being_started(record, seen):
        return record
    if {seen.status, record.status} == {Status.RUNNING, Status.PAUSED}:  # paused or resumed elsewhere
        updated = replace(record, status=seen.status)
    else:
        updated = replace(
            record,
            status=seen.status,
            exit_code=seen.exit_code,
            oom_killed=seen.oom_killed,
            finished_at=seen.finished_at or time.time(),
            pid=seen.pid,
        )
    if updated.status is Status.EXITED:
        updated = replace(updated, health=None)
    try:
        save(ctx, updated, expect=record.status)
    except NotFoundError:
        return updated  # removed meanwhile: the observation still answers the caller
    except InvalidStateError:
        return ctx.records.workloads.find(record.id) or updated  # another process recorded it first
    except HostError as exc:  # a full disk: the caller still gets what is true; a later look records it
        log.warning("%s: %s", record.name, exc)
        return updated
    if updated.status is Status.EXITED:  # whichever process records the exit first writes the event, once
        from isobox.service import events

        code = updated.exit_code if updated.exit_code is not None else -1
        events.container(ctx, updated, "die", exitCode=str(code))
    return updated


START_GRACE_S = 60.0


def _being_started(record: WorkloadRecord, seen: Observation) -> bool:
    """Recorded RUNNING by a start that is still making it (an attached start records RUNNING first): not
    started yet is not "created again". A start that died half-way is seen as such after the grace."""
    return (seen.status is Status.CREATED and record.status is Status.RUNNING
            and time.time() - (record.started_at or 0.0) < START_GRACE_S)


def get(ctx: Context, name_or_id: str) -> WorkloadRecord:
    return refresh(ctx, ctx.records.workloads.get(name_or_id))


def list_workloads(ctx: Context, *, all: bool = False) -> list[WorkloadRecord]:
    records = [refresh(ctx, r) for r in ctx.records.workloads.all()]
    if any(r.status is Status.EXITED and r.plan.remove and r.kind is Kind.VM for r in records):
        from isobox.service.exits import remove_exited

        records = [r for r in records if not remove_exited(ctx, r)]
    return records if all else [r for r in records if r.status in (Status.RUNNING, Status.PAUSED)]


@contextmanager
def locked_workload(ctx: Context, record_id: str) -> Iterator[None]:
    with locked(ctx.paths.locks, _lock_key(record_id)):
        try:
            yield
        except NotFoundError:
            # Removed while this process waited: the lock file it made anew is not left for nobody.
            locks.discard(ctx.paths.locks, _lock_key(record_id))
            raise


def _lock_key(record_id: str) -> str:
    return f"workload-{record_id}"


# ---- create -----------------------------------------------------------------------------------


def create(ctx: Context, spec: WorkloadSpec, *, pull: PullPolicy = PullPolicy.MISSING,
           image: planning.ResolvedImage | None = None) -> WorkloadRecord:
    name = ids.validate_name(spec.name) if spec.name else ids.random_name()
    planning.refuse_taken(ctx, name)
    if image is not None:
        image_id, layers, image_config = image.id, image.layers, image.config
    else:
        image_id, layers, image_config = planning.resolve_image(ctx, spec.image, pull)
    # The isolation policy picks the kind (or refuses) before a driver is chosen; see service/policy.py.
    # Without a policy file the kind is the one asked for, and the policy code is not even imported.
    path, named = policy_path()
    if image is None and (named or path.exists()):
        from isobox.service import policy

        spec = policy.apply(ctx, spec, image_id)
    else:
        spec = replace(spec, kind_by_policy=False)
    if spec.kind is Kind.VM and spec.security.userns:
        # Not silently ignored: a VM has its own kernel, so there is no host user namespace to remap into.
        raise InvalidArgumentError("--userns applies to containers only", op="create", id=name)
    planning.check_host_limits(spec)
    plan = planning.new_plan(ctx, spec, name, image_id, layers, image_config)
    driver = driver_for(ctx, spec.kind)
    with locked_workload(ctx, plan.id), ExitStack() as undo:
        undo.callback(locks.discard, ctx.paths.locks, _lock_key(plan.id))  # last undo: a failed create leaves none
        record = _reserve(ctx, plan, userns=spec.security.userns == "auto", undo=undo)
        plan = record.plan
        if spec.mounts or image_config.volumes:
            from isobox.service import volumes

            plan = replace(plan, mounts=volumes.resolve_mounts(ctx, spec.mounts, image_config, undo, spec.kind))
            record = replace(record, plan=plan)
            save(ctx, record)  # the volumes it holds, should this create be killed before it ends
        plan = replace(plan, network=_attach(ctx, plan, spec, plan.exposed_ports, undo))
        record = _made(ctx, driver, replace(record, plan=plan), undo)
        undo.pop_all()
    from isobox.service import events

    events.container(ctx, record, "create")
    if record.plan.health is not None:
        from isobox.service import engine

        engine.ensure(ctx, f"the health check of {record.name}")
    return record


def _reserve(ctx: Context, plan: RunPlan, *, userns: bool, undo: ExitStack) -> WorkloadRecord:
    """The first record of a workload (CREATING): its name, and its uid range with --userns=auto."""
    record = WorkloadRecord(
        id=plan.id, name=plan.name, kind=plan.kind, status=Status.CREATING, plan=plan, created_at=time.time()
    )
    record = ctx.records.workloads.reserve(record, userns=userns)
    undo.callback(ctx.records.workloads.delete, record.id)
    return record


def _made(ctx: Context, driver: Driver, record: WorkloadRecord, undo: ExitStack) -> WorkloadRecord:
    created = driver.create(record.plan)
    undo.callback(driver.delete, record)
    record = replace(record, status=Status.CREATED, driver_info=dict(created.facts), exec_devices=created.exec_devices)
    save(ctx, record, expect=Status.CREATING)
    return record


def _attach(
    ctx: Context, plan: RunPlan, spec: WorkloadSpec, exposed: tuple[str, ...], undo: ExitStack
) -> NetworkPlan:
    """The workload's networks. --network none|host need none of the network code, which is then not
    even imported (a few ms of every such start)."""
    addressed = bool(spec.publish or spec.publish_all or spec.ip or spec.network_aliases)
    mode = network_mode(spec.networks or (DEFAULT_NETWORK,), addressed=addressed, vm=spec.kind is Kind.VM)
    if mode is not NetworkMode.BRIDGE:
        return NetworkPlan(mode=mode)
    from isobox.service import networks

    return networks.attach(ctx, plan, spec, exposed, undo)


def bridged(plan: RunPlan) -> bool:
    return plan.network is not None and plan.network.mode is NetworkMode.BRIDGE


def plan(ctx: Context, spec: WorkloadSpec) -> RunPlan:
    """The RunPlan `create` would make for ``spec`` (service/planning.py), creating nothing."""
    return planning.plan(ctx, spec)


def create_from_plan(ctx: Context, plan: RunPlan, *, exec_devices: bool | None = None) -> WorkloadRecord:
    """A workload from a plan made elsewhere (a VM of a disk image, a clone); ``exec_devices`` overrides
    the driver's choice (a clone keeps its source's devices: its memory snapshot holds them)."""
    driver = driver_for(ctx, plan.kind)
    with locked_workload(ctx, plan.id), ExitStack() as undo:
        undo.callback(locks.discard, ctx.paths.locks, _lock_key(plan.id))
        record = _reserve(ctx, plan, userns=False, undo=undo)
        record = _made(ctx, driver, record, undo)
        if exec_devices is not None and exec_devices != record.exec_devices:
            record = replace(record, exec_devices=exec_devices)
            save(ctx, record)
        undo.pop_all()
    return record


# ---- start, run -------------------------------------------------------------------------------


def start(ctx: Context, name_or_id: str, *, attach: Attach | None = None) -> RunResult:
    """Start a workload. Attached, it returns when the workload exits; the record says RUNNING from the
    moment it starts, and the lock is held only for that transition, so `stop`, `kill` or `exec` from
    elsewhere (or this process's own signal forwarding) never wait for the workload to end."""
    found = ctx.records.workloads.get(name_or_id)
    driver = driver_for(ctx, found.kind)
    with locked_workload(ctx, found.id):
        before = get(ctx, found.id)
        require(Op.START, before.status, workload=before.name)
        plumb = None
        if bridged(before.plan):
            from isobox.service import networks

            plumb = networks.prepare(ctx, before)  # interfaces: made while the runtime creates the container
        record = replace(
            before,
            status=Status.RUNNING,
            pid=0,
            started_at=time.time(),
            exit_code=None,
            finished_at=None,
            oom_killed=False,
            stopped_by_user=False,
            health=HealthState() if before.plan.health is not None else None,
        )
        if attach is None:
            record = replace(record, pid=_start(ctx, driver, before, None, plumb))
        save(ctx, record, expect=before.status)
    from isobox.service import events

    events.container(ctx, record, "start")
    if attach is None:
        return RunResult(record, None)
    try:
        _start(ctx, driver, before, attach, plumb)
    except BaseException:
        with locked_workload(ctx, record.id):
            save(ctx, refresh(ctx, record) if _started(driver, record) else before)
        raise
    seen = driver.wait(record)
    record = refresh(ctx, record)
    return RunResult(record, seen.exit_code)


def _start(
    ctx: Context, driver: Driver, record: WorkloadRecord, attach: Attach | None, plumb: Callable[[], None] | None
) -> int:
    try:
        return driver.start(record, attach, during_create=plumb)
    except CommandError as exc:
        # As Docker's: the workload stays as it was (created), with the shell's code for what went wrong.
        save(ctx, replace(record, exit_code=exc.exit_code))
        raise


def _started(driver: Driver, record: WorkloadRecord) -> bool:
    try:
        return driver.observe(record).status is not Status.CREATED
    except Exception:  # the driver could not even tell: treat as not started
        return False


def run(ctx: Context, spec: WorkloadSpec, *, detach: bool = False, attach: Attach | None = None,
        pull: PullPolicy = PullPolicy.MISSING) -> RunResult:
    """create + start; in the foreground, waits and returns the exit code (and removes with --rm)."""
    if detach and spec.interactive and spec.tty and attach is not None:
        raise InvalidArgumentError("cannot both detach and attach", op="run")
    record = create(ctx, spec, pull=pull)
    try:
        result = start(ctx, record.id, attach=None if detach else (attach or Attach(stdin=None)))
    except BaseException:
        if spec.remove:
            _remove_if_present(ctx, record.id)
        raise
    if not detach and spec.remove:
        _remove_if_present(ctx, record.id)
    return result


def _remove_if_present(ctx: Context, workload_id: str) -> None:
    from isobox.service.exits import remove_if_present

    remove_if_present(ctx, workload_id)


# ---- remove -----------------------------------------------------------------------------------


def remove(ctx: Context, name_or_id: str, *, force: bool = False, volumes: bool = False) -> WorkloadRecord:
    """Remove a workload (a half-created one too); with ``volumes`` (or for --rm workloads) also its
    anonymous volumes. On a full disk the files go first, so the removal frees space before it records
    itself."""
    found = ctx.records.workloads.get(name_or_id)
    with locked_workload(ctx, found.id):
        record = get(ctx, found.id)
        require(Op.FORCE_REMOVE if force else Op.REMOVE, record.status, workload=record.name)
        if record.status in (Status.RUNNING, Status.PAUSED):
            from isobox.service import control

            control.thaw(ctx, record)
        driver_for(ctx, record.kind).delete(record)
        if bridged(record.plan) or record.status is Status.CREATING:  # a killed create: its endpoints tell
            from isobox.service import networks

            networks.detach(ctx, record)
        ctx.records.workloads.delete(record.id)
        locks.discard(ctx.paths.locks, _lock_key(record.id))  # held: see state/locks.py
    from isobox.service import events

    if record.status in (Status.RUNNING, Status.PAUSED):  # rm -f ended it: as dockerd, a kill and a die first
        events.container(ctx, record, "kill", signal="9")
        events.container(ctx, record, "die", exitCode="137")
    events.container(ctx, record, "destroy")
    locks.discard_idle(ctx.paths.locks, locks.keys_with(ctx.paths.locks, record.id))  # a VM's log and agent
    discard_tree(record.plan.workload_dir)  # any depth a container made
    if (volumes or record.plan.remove) and record.plan.mounts:
        from isobox.service import volumes as volume_service

        volume_service.remove_anonymous(ctx, record.plan.mounts)
    return record


def stale_creating(ctx: Context, record: WorkloadRecord) -> bool:
    """A CREATING record whose creator is gone (its lock is free): a create that was killed."""
    if record.status is not Status.CREATING:
        return False
    try:
        with locked(ctx.paths.locks, _lock_key(record.id), wait=False):
            return True
    except BlockingIOError:
        return False
