"""Workload operations (containers and VMs alike): spec → plan → driver, with records and rollback.

Every operation that changes a workload holds its lock, reads the driver's observation of the real
state first (a workload may have exited while no isobox process was alive) and records the outcome.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from isobox.config import policy_path
from isobox.drivers.base import Attach, Driver, ExecSpec
from isobox.errors import ConflictError, InvalidArgumentError, IsoboxError, NotFoundError
from isobox.linux.tree import discard_tree
from isobox.model import ids
from isobox.model.image_config import ImageConfig
from isobox.model.network import DEFAULT_NETWORK, NetworkMode, NetworkPlan, network_mode
from isobox.model.plan import USERNS_SIZE, RunPlan, resolve
from isobox.model.pull import PullPolicy
from isobox.model.record import Stats, WorkloadRecord
from isobox.model.spec import Kind, RestartPolicy, WorkloadSpec
from isobox.model.status import Op, Status, require
from isobox.service.context import Context
from isobox.state import codec
from isobox.state.locks import locked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    record: WorkloadRecord
    exit_code: int | None  # None when detached


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
    return (sys.executable, "-m", "isobox.cli.main", *root, "system", "on-exit")


# ---- records ----------------------------------------------------------------------------------


def _save(ctx: Context, record: WorkloadRecord) -> None:
    with ctx.db.transaction() as tx:
        tx.execute(
            "INSERT OR REPLACE INTO workloads (id, name, kind, status, image_id, record, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.name,
                record.kind.value,
                record.status.value,
                record.plan.image_id,
                codec.dumps(record),
                record.created_at,
            ),
        )


def save(ctx: Context, record: WorkloadRecord) -> None:
    """Persist a record changed outside this module (e.g. a VM resumed from a memory snapshot)."""
    _save(ctx, record)


def _load(ctx: Context, name_or_id: str) -> WorkloadRecord:
    rows = ctx.db.query("SELECT record FROM workloads WHERE name = ? OR id = ?", (name_or_id, name_or_id))
    if not rows and len(name_or_id) >= 3:
        rows = ctx.db.query("SELECT record FROM workloads WHERE id LIKE ?", (name_or_id + "%",))
        if len(rows) > 1:
            raise ConflictError(f"workload id prefix {name_or_id!r} is ambiguous", op="find workload")
    if not rows:
        raise NotFoundError(f"no such workload: {name_or_id}", op="find workload", id=name_or_id)
    return codec.loads(WorkloadRecord, rows[0]["record"])


def refresh(ctx: Context, record: WorkloadRecord) -> WorkloadRecord:
    """Bring the record in line with what the driver sees (exit codes written while isobox was away)."""
    if record.status in (Status.CREATED, Status.REMOVING) or (record.status is Status.EXITED):
        return record
    seen = driver_for(ctx, record.kind).observe(record)
    if seen.status is record.status:
        return record
    if {seen.status, record.status} == {Status.RUNNING, Status.PAUSED}:  # paused or resumed elsewhere
        updated = replace(record, status=seen.status)
        _save(ctx, updated)
        return updated
    updated = replace(
        record,
        status=seen.status,
        exit_code=seen.exit_code,
        oom_killed=seen.oom_killed,
        finished_at=seen.finished_at or time.time(),
        pid=seen.pid,
    )
    _save(ctx, updated)
    return updated


def get(ctx: Context, name_or_id: str) -> WorkloadRecord:
    return refresh(ctx, _load(ctx, name_or_id))


def list_workloads(ctx: Context, *, all: bool = False) -> list[WorkloadRecord]:
    rows = ctx.db.query("SELECT record FROM workloads ORDER BY created_at DESC")
    records = [refresh(ctx, codec.loads(WorkloadRecord, r["record"])) for r in rows]
    return records if all else [r for r in records if r.status in (Status.RUNNING, Status.PAUSED)]


@contextmanager
def _locked(ctx: Context, record_id: str) -> Iterator[None]:
    with locked(ctx.paths.locks, f"workload-{record_id}"):
        yield


# ---- create / start / run ---------------------------------------------------------------------


def _image(ctx: Context, image: str, pull: PullPolicy = PullPolicy.MISSING
           ) -> tuple[str, tuple[str, ...], ImageConfig]:
    """The image from the store; if missing (or always, by ``pull``), pulled as Docker does (see
    service/images.ensure). A digest reference is the store's only if it was pulled by that digest."""
    try:
        if pull is PullPolicy.ALWAYS:
            raise NotFoundError(f"image {image!r}: pulled again (--pull always)", op="resolve image")
        record = ctx.images.resolve(image)
    except NotFoundError:
        if pull is PullPolicy.NEVER:
            raise
        # Imported here: the registry client (httpx) is only paid for when an image must be fetched.
        from isobox.service import images as image_service

        record = image_service.ensure(ctx, image, policy=pull)
    return record.id, ctx.images.layer_dirs(record), ctx.images.config(record)


def create(ctx: Context, spec: WorkloadSpec, *, pull: PullPolicy = PullPolicy.MISSING) -> WorkloadRecord:
    name = ids.validate_name(spec.name) if spec.name else ids.random_name()
    if ctx.db.query("SELECT id FROM workloads WHERE name = ?", (name,)):
        raise ConflictError(f"the name {name!r} is already in use", op="create", id=name)
    image_id, layers, image_config = _image(ctx, spec.image, pull)
    # The isolation policy picks the kind (or refuses) before a driver is chosen; see service/policy.py.
    # Without a policy file the kind is the one asked for, and the policy code is not even imported.
    path, named = policy_path()
    if named or path.exists():
        from isobox.service import policy

        spec = policy.apply(ctx, spec, image_id)
    else:
        spec = replace(spec, kind_by_policy=False)
    plan = _new_plan(ctx, spec, name, image_id, layers, image_config)
    workload_id = plan.id
    if spec.kind is Kind.VM and spec.security.userns:
        # Not silently ignored: a VM has its own kernel, so there is no host user namespace to remap into.
        raise InvalidArgumentError("--userns applies to containers only", op="create", id=name)
    if spec.security.userns == "auto":
        plan = replace(plan, userns_base=_allocate_userns(ctx))
    driver = driver_for(ctx, spec.kind)
    with _locked(ctx, workload_id), ExitStack() as undo:
        if spec.mounts or image_config.volumes:
            from isobox.service import volumes

            plan = replace(plan, mounts=volumes.resolve_mounts(ctx, spec.mounts, image_config, undo, spec.kind))
        plan = replace(plan, network=_attach(ctx, plan, spec, image_config.exposed_ports, undo))
        record = _create_record(ctx, driver, plan, undo)
        undo.pop_all()
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


def _bridged(plan: RunPlan) -> bool:
    return plan.network is not None and plan.network.mode is NetworkMode.BRIDGE


def _new_plan(
    ctx: Context, spec: WorkloadSpec, name: str, image_id: str, layers: tuple[str, ...], image: ImageConfig
) -> RunPlan:
    workload_id = ids.new_id()
    return resolve(
        spec,
        image,
        id=workload_id,
        name=name,
        image_id=image_id,
        layers=layers,
        workload_dir=str(ctx.paths.workloads / workload_id),
    )


def plan(ctx: Context, spec: WorkloadSpec) -> RunPlan:
    """The RunPlan `create` would make for ``spec`` (image resolved, built or pulled), creating nothing.

    With `create_from_plan` this is how drivers' own tests and benchmarks make a workload without the
    service's policy, volumes and networks."""
    image_id, layers, image_config = _image(ctx, spec.image)
    workload_name = ids.validate_name(spec.name) if spec.name else ids.random_name()
    return _new_plan(ctx, spec, workload_name, image_id, layers, image_config)


def _create_record(ctx: Context, driver: Driver, plan: RunPlan, undo: ExitStack) -> WorkloadRecord:
    info = driver.create(plan)
    record = WorkloadRecord(
        id=plan.id,
        name=plan.name,
        kind=plan.kind,
        status=Status.CREATED,
        plan=plan,
        created_at=time.time(),
        driver_info=dict(info),
    )
    undo.callback(driver.delete, record)
    _save(ctx, record)
    return record


def create_from_plan(ctx: Context, plan: RunPlan) -> WorkloadRecord:
    """A workload from a plan made elsewhere (e.g. a VM booting a disk image rather than an OCI image)."""
    if ctx.db.query("SELECT id FROM workloads WHERE name = ?", (plan.name,)):
        raise ConflictError(f"the name {plan.name!r} is already in use", op="create", id=plan.name)
    with _locked(ctx, plan.id), ExitStack() as undo:
        record = _create_record(ctx, driver_for(ctx, plan.kind), plan, undo)
        undo.pop_all()
    return record


USERNS_FIRST = 1_000_000  # above the ranges /etc/subuid usually hands to users (100000…)


def _allocate_userns(ctx: Context) -> int:
    """The lowest free uid/gid range for a --userns=auto workload (ranges never overlap)."""
    with locked(ctx.paths.locks, "userns"):
        taken = {
            codec.loads(WorkloadRecord, row["record"]).plan.userns_base
            for row in ctx.db.query("SELECT record FROM workloads WHERE record LIKE '%\"userns_base\": 1%'")
        }
        slot = 0
        while USERNS_FIRST + slot * USERNS_SIZE in taken:
            slot += 1
        return USERNS_FIRST + slot * USERNS_SIZE


def start(ctx: Context, name_or_id: str, *, attach: Attach | None = None) -> RunResult:
    """Start a workload. Attached, it returns when the workload exits; the record says RUNNING from the
    moment it starts, and the lock is held only for that transition, so `stop`, `kill` or `exec` from
    elsewhere (or this process's own signal forwarding) never wait for the workload to end."""
    found = _load(ctx, name_or_id)
    driver = driver_for(ctx, found.kind)
    with _locked(ctx, found.id):
        before = get(ctx, found.id)
        require(Op.START, before.status, workload=before.name)
        plumb = None
        if _bridged(before.plan):
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
        )
        if attach is None:
            record = replace(record, pid=driver.start(before, None, during_create=plumb))
        _save(ctx, record)
    if attach is None:
        return RunResult(record, None)
    try:
        driver.start(before, attach, during_create=plumb)
    except BaseException:
        with _locked(ctx, record.id):
            _save(ctx, refresh(ctx, record) if _started(driver, record) else before)
        raise
    seen = driver.wait(record)
    record = refresh(ctx, record)
    return RunResult(record, seen.exit_code)


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
            remove(ctx, record.id, force=True)
        raise
    if not detach and spec.remove:
        remove(ctx, record.id, force=True)
    return result


# ---- signals, stop, remove --------------------------------------------------------------------


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
    record = get(ctx, name_or_id)
    require(Op.PAUSE if frozen else Op.UNPAUSE, record.status, workload=record.name)
    with _locked(ctx, record.id):
        driver = driver_for(ctx, record.kind)
        (driver.pause if frozen else driver.unpause)(record)
        record = replace(record, status=Status.PAUSED if frozen else Status.RUNNING)
        _save(ctx, record)
    return record


def _thaw(ctx: Context, record: WorkloadRecord) -> None:
    """A frozen process handles no signal, not even SIGKILL under the v1 freezer: stop, kill and rm -f
    resume a paused workload first (as Docker does)."""
    if record.status is Status.PAUSED:
        try:
            driver_for(ctx, record.kind).unpause(record)
        except IsoboxError as exc:
            log.warning("could not resume %s before stopping it: %s", record.name, exc)


def stop(ctx: Context, name_or_id: str, *, timeout_s: float | None = None) -> WorkloadRecord:
    record = get(ctx, name_or_id)
    if record.status not in (Status.RUNNING, Status.PAUSED):
        return record  # Docker: stopping a stopped container succeeds
    with _locked(ctx, record.id):
        _thaw(ctx, record)
        record = replace(record, status=Status.RUNNING, stopped_by_user=True)
        _save(ctx, record)
        driver_for(ctx, record.kind).stop(record, record.plan.stop_timeout_s if timeout_s is None else timeout_s)
    return refresh(ctx, record)


def kill(ctx: Context, name_or_id: str, signal: int) -> WorkloadRecord:
    record = get(ctx, name_or_id)
    require(Op.KILL, record.status, workload=record.name)
    with _locked(ctx, record.id):
        _thaw(ctx, record)
        record = replace(record, status=Status.RUNNING, stopped_by_user=True)
        _save(ctx, record)
        driver_for(ctx, record.kind).kill(record, signal)
    return record


def restart(ctx: Context, name_or_id: str, *, timeout_s: float | None = None) -> RunResult:
    record = stop(ctx, name_or_id, timeout_s=timeout_s)
    return start(ctx, record.id)


def remove(ctx: Context, name_or_id: str, *, force: bool = False, volumes: bool = False) -> WorkloadRecord:
    """Remove a workload; with ``volumes`` (or for --rm workloads) also its anonymous volumes."""
    record = get(ctx, name_or_id)
    require(Op.FORCE_REMOVE if force else Op.REMOVE, record.status, workload=record.name)
    with _locked(ctx, record.id):
        _thaw(ctx, record)
        record = replace(record, status=Status.REMOVING)
        _save(ctx, record)
        driver_for(ctx, record.kind).delete(record)
        if _bridged(record.plan):
            from isobox.service import networks

            networks.detach(ctx, record)
        with ctx.db.transaction() as tx:
            tx.execute("DELETE FROM workloads WHERE id = ?", (record.id,))
    discard_tree(record.plan.workload_dir)  # any depth a container made
    if (volumes or record.plan.remove) and record.plan.mounts:
        from isobox.service import volumes as volume_service

        volume_service.remove_anonymous(ctx, record.plan.mounts)
    return record


def on_exit(ctx: Context, workload_id: str) -> None:
    """Run by conmon when a detached container exits: --rm and restart policies."""
    try:
        record = get(ctx, workload_id)
    except NotFoundError:
        return
    if record.plan.remove:
        remove(ctx, record.id, force=True)
        return
    if _should_restart(record):
        with _locked(ctx, record.id):
            _save(ctx, replace(record, restart_count=record.restart_count + 1))
        start(ctx, record.id)


def boot(ctx: Context) -> tuple[list[WorkloadRecord], list[tuple[WorkloadRecord, IsoboxError]]]:
    """After the host restarted: start again every exited workload whose restart policy is `always`, as
    Docker's daemon does when it starts and Podman's podman-restart.service does at boot (a workload
    stopped by hand included, as Docker's `always`). Nothing else runs isobox at boot: the unit in
    contrib/systemd calls this. Returns (started, failed with the reason)."""
    started: list[WorkloadRecord] = []
    failed: list[tuple[WorkloadRecord, IsoboxError]] = []
    for record in reversed(list_workloads(ctx, all=True)):  # oldest first, as they were created
        if record.plan.restart.policy is not RestartPolicy.ALWAYS or record.status is not Status.EXITED:
            continue
        try:
            started.append(start(ctx, record.id).record)
        except IsoboxError as exc:
            failed.append((record, exc))
    return started, failed


def _should_restart(record: WorkloadRecord) -> bool:
    policy = record.plan.restart
    if record.stopped_by_user or policy.policy is RestartPolicy.NO:
        return False
    if policy.policy is RestartPolicy.ON_FAILURE:
        return (record.exit_code or 0) != 0 and (policy.max_retries == 0 or record.restart_count < policy.max_retries)
    return True


# ---- inside a workload ------------------------------------------------------------------------


def exec(ctx: Context, name_or_id: str, spec: ExecSpec) -> int:
    record = get(ctx, name_or_id)
    require(Op.EXEC, record.status, workload=record.name)
    return driver_for(ctx, record.kind).exec(record, spec)


def wait(ctx: Context, name_or_id: str, timeout_s: float | None = None) -> WorkloadRecord:
    record = get(ctx, name_or_id)
    if record.status in (Status.RUNNING, Status.PAUSED):
        driver_for(ctx, record.kind).wait(record, timeout_s)
    return refresh(ctx, record)


def stats(ctx: Context, name_or_id: str) -> Stats:
    record = get(ctx, name_or_id)
    return driver_for(ctx, record.kind).stats(record)


def top(ctx: Context, name_or_id: str) -> list[tuple[int, str]]:
    """(pid, command line) of each process of a running workload, as the host sees them."""
    record = get(ctx, name_or_id)
    driver = driver_for(ctx, record.kind)
    pids = getattr(driver, "top", None)
    if pids is None:
        raise InvalidArgumentError(f"top is not available for {record.kind.value} workloads", op="top")
    rows = []
    for pid in pids(record):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        rows.append((int(pid), cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
    return rows
