"""`isobox snapshot create|list|restore|rm` for both kinds: a VM's disk (+ memory when running), a
container's writable layer. The verbs are the same; each driver keeps its own format."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

from isobox.model.network import NetworkMode
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind
from isobox.model.status import Status
from isobox.service import workloads
from isobox.service.context import Context

if TYPE_CHECKING:
    from isobox.drivers.container.driver import ContainerDriver


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    content: str  # "writable layer", "writable layer+processes", "disk", "disk+memory"
    created_at: float
    size_bytes: int = 0  # a VM's saved memory and device state, or a container's layer archive (+ CRIU images)
    note: str = ""  # why a running workload's memory was not saved with it


def _container_content(processes: bool) -> str:
    return "writable layer+processes" if processes else "writable layer"


def _vm(ctx: Context) -> object:
    return workloads.driver_for(ctx, Kind.VM)


def _container(ctx: Context) -> ContainerDriver:
    return workloads.driver_for(ctx, Kind.CONTAINER)  # type: ignore[return-value]


def create(ctx: Context, name_or_id: str, name: str) -> SnapshotInfo:
    record = workloads.get(ctx, name_or_id)
    if record.kind is Kind.VM:
        from isobox.drivers.vm import snapshots as vm_snapshots

        made = vm_snapshots.create(_vm(ctx), record, name)  # type: ignore[arg-type]
        return SnapshotInfo(
            made.name, "disk+memory" if made.has_memory else "disk", made.created_at, made.vm_state_bytes
        )
    from isobox.drivers.container import snapshots as container_snapshots

    note = ""
    checkpoint = None
    if workloads.refresh(ctx, record).status is Status.RUNNING:
        driver = _container(ctx)
        criu = driver.criu()
        if record.plan.process.tty or record.plan.process.interactive:
            note = "process state not saved: a container with -t or -i could not be restored (its terminal is gone)"
        elif criu.usable:
            checkpoint = partial(driver.checkpoint, record)
        else:
            note = f"process state not saved: {criu.reason}"
    saved = container_snapshots.create(record, name, checkpoint=checkpoint)
    return SnapshotInfo(saved.name, _container_content(saved.processes), saved.created_at, saved.size_bytes, note)


def list_snapshots(ctx: Context, name_or_id: str) -> list[SnapshotInfo]:
    record = workloads.get(ctx, name_or_id)
    if record.kind is Kind.VM:
        from isobox.drivers.vm import snapshots as vm_snapshots

        return [
            SnapshotInfo(s.name, "disk+memory" if s.has_memory else "disk", s.created_at, s.vm_state_bytes)
            for s in vm_snapshots.list_snapshots(_vm(ctx), record)  # type: ignore[arg-type]
        ]
    from isobox.drivers.container import snapshots as container_snapshots

    return [
        SnapshotInfo(s.name, _container_content(s.processes), s.created_at, s.size_bytes)
        for s in container_snapshots.list_snapshots(record)
    ]


def restore(ctx: Context, name_or_id: str, name: str) -> WorkloadRecord:
    """Go back to a snapshot. A VM memory snapshot, or a container snapshot with its processes,
    resumes where it was; otherwise a running container is stopped, its writable layer swapped, and
    started again."""
    record = workloads.get(ctx, name_or_id)
    if record.kind is Kind.VM:
        from isobox.drivers.vm import snapshots as vm_snapshots

        if vm_snapshots.restore(_vm(ctx), record, name):  # type: ignore[arg-type]
            record = replace(record, status=Status.RUNNING, started_at=time.time(), exit_code=None, finished_at=None)
            workloads.save(ctx, record)
        return record
    from isobox.drivers.container import snapshots as container_snapshots

    snapshot = container_snapshots.find(record, name)
    record = workloads.refresh(ctx, record)
    was_running = record.status in (Status.RUNNING, Status.PAUSED)
    if was_running:
        # The processes of a checkpoint replace the running ones: no grace period for those.
        record = workloads.stop(ctx, record.id, timeout_s=0 if snapshot.processes else None)
    container_snapshots.restore(record, name)
    if snapshot.processes:
        if record.plan.network is not None and record.plan.network.mode is NetworkMode.BRIDGE:
            from isobox.service import networks

            plumb = networks.prepare(ctx, record)  # after a host reboot: the namespace and its veths again
            if plumb is not None:
                plumb()
        pid = _container(ctx).restore_checkpoint(record, container_snapshots.images_dir(record, name))
        record = replace(
            record, status=Status.RUNNING, pid=pid, started_at=time.time(), exit_code=None, finished_at=None
        )
        workloads.save(ctx, record)
    elif was_running:
        record = workloads.start(ctx, record.id).record
    return record


def remove(ctx: Context, name_or_id: str, name: str) -> None:
    record = workloads.get(ctx, name_or_id)
    if record.kind is Kind.VM:
        from isobox.drivers.vm import snapshots as vm_snapshots

        vm_snapshots.remove(_vm(ctx), record, name)  # type: ignore[arg-type]
        return
    from isobox.drivers.container import snapshots as container_snapshots

    container_snapshots.remove(record, name)


def clone(ctx: Context, name_or_id: str, snapshot: str, new_name: str | None = None) -> WorkloadRecord:
    """A new, running VM from a snapshot of another (the fast start path)."""
    from isobox.drivers.vm import snapshots as vm_snapshots
    from isobox.drivers.vm.driver import EXEC_TTY
    from isobox.drivers.vm.qemu_args import ISOLATED_NICS_LABEL
    from isobox.errors import InvalidArgumentError
    from isobox.model import ids

    source = workloads.get(ctx, name_or_id)
    if source.kind is not Kind.VM:
        raise InvalidArgumentError("clone is for VM snapshots", op="snapshot clone", id=source.name)
    driver = _vm(ctx)
    vm_snapshots.find(driver, source, snapshot)  # type: ignore[arg-type]
    if any(m.disk for m in source.plan.mounts):
        raise InvalidArgumentError(
            "a VM with disk volumes cannot be cloned: a disk volume is attached to one VM at a time",
            op="snapshot clone",
            id=source.name,
        )
    clone_id = ids.new_id()
    # The clone's guest holds the source's addresses: its NICs stay off the bridge, and it takes no part
    # of the source's network plan (whose TAPs `rm` of the clone would otherwise delete).
    macs = [i.mac for i in source.plan.network.interfaces] if source.plan.network else []
    plan = replace(
        source.plan,
        id=clone_id,
        name=ids.validate_name(new_name) if new_name else ids.random_name(),
        labels=(*source.plan.labels, (ISOLATED_NICS_LABEL, ",".join(macs))),
        network=None,
        workload_dir=str(ctx.paths.workloads / clone_id),
    )
    record = workloads.create_from_plan(ctx, plan)
    if record.driver_info.get(EXEC_TTY) != source.driver_info.get(EXEC_TTY):
        # The memory snapshot holds the source's devices: a source made before the exec console existed
        # has none, and neither may its clone.
        info = {k: v for k, v in record.driver_info.items() if k != EXEC_TTY}
        record = replace(record, driver_info=info)
        workloads.save(ctx, record)
    try:
        vm_snapshots.clone(driver, source, snapshot, record)  # type: ignore[arg-type]
    except BaseException:
        workloads.remove(ctx, clone_id, force=True)
        raise
    observed = driver.observe(record)  # type: ignore[attr-defined]
    record = replace(record, status=Status.RUNNING, pid=observed.pid, started_at=time.time())
    workloads.save(ctx, record)
    return record
