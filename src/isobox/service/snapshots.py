"""`isobox snapshot create|list|restore|rm|clone` for both kinds. The verbs and the records are the same;
what a snapshot holds (files, processes, a disk, memory) and how it is kept is each driver's."""

from __future__ import annotations

import time
from dataclasses import replace

from isobox.drivers import base as drivers
from isobox.model import ids
from isobox.model.capability import Capability
from isobox.model.record import WorkloadRecord
from isobox.model.snapshot import SnapshotInfo
from isobox.model.status import Op, Status, require
from isobox.service import workloads
from isobox.service.context import Context


def create(ctx: Context, name_or_id: str, name: str) -> SnapshotInfo:
    record = workloads.get(ctx, name_or_id)
    require(Op.SNAPSHOT, record.status, workload=record.name)
    with workloads.locked_workload(ctx, record.id):
        return workloads.driver_for(ctx, record.kind).snapshot_create(record, name)


def list_snapshots(ctx: Context, name_or_id: str) -> list[SnapshotInfo]:
    record = workloads.get(ctx, name_or_id)
    return workloads.driver_for(ctx, record.kind).snapshot_list(record)


def restore(ctx: Context, name_or_id: str, name: str) -> WorkloadRecord:
    """Go back to a snapshot. One with processes or memory resumes where it was; a files-only one replaces
    the workload's files (one that was running is started again)."""
    found = workloads.get(ctx, name_or_id)
    require(Op.SNAPSHOT, found.status, workload=found.name)
    driver = workloads.driver_for(ctx, found.kind)
    with workloads.locked_workload(ctx, found.id):
        record = workloads.get(ctx, found.id)
        plumb = None
        if workloads.bridged(record.plan):
            from isobox.service import networks

            plumb = networks.prepare(ctx, record)  # after a host reboot: namespaces and interfaces again
        pid = driver.snapshot_restore(record, name, during_create=plumb)
        if pid is None:
            restored = workloads.refresh(ctx, replace(record, stopped_by_user=False))
        else:
            restored = replace(
                record, status=Status.RUNNING, pid=pid, started_at=time.time(), exit_code=None, finished_at=None,
                stopped_by_user=False,
            )
        workloads.save(ctx, restored)
    return restored


def remove(ctx: Context, name_or_id: str, name: str) -> None:
    record = workloads.get(ctx, name_or_id)
    with workloads.locked_workload(ctx, record.id):
        workloads.driver_for(ctx, record.kind).snapshot_remove(record, name)


def clone(ctx: Context, name_or_id: str, snapshot: str, new_name: str | None = None) -> WorkloadRecord:
    """A new, running workload from a snapshot of another (for VMs: the fast start path)."""
    source = workloads.get(ctx, name_or_id)
    driver = workloads.driver_for(ctx, source.kind)
    drivers.require(driver, source, Capability.CLONE, op="snapshot clone")
    if not any(s.name == snapshot for s in driver.snapshot_list(source)):
        from isobox.errors import NotFoundError

        raise NotFoundError(f"no snapshot {snapshot!r} of {source.name}", op="snapshot clone", id=source.name)
    clone_id = ids.new_id()
    plan = driver.clone_plan(
        source,
        replace(
            source.plan,
            id=clone_id,
            name=ids.validate_name(new_name) if new_name else ids.random_name(),
            workload_dir=str(ctx.paths.workloads / clone_id),
        ),
    )
    record = workloads.create_from_plan(ctx, plan, exec_devices=source.exec_devices)
    try:
        pid = driver.snapshot_clone(source, snapshot, record)
    except BaseException:
        workloads.remove(ctx, clone_id, force=True)
        raise
    record = replace(record, status=Status.RUNNING, pid=pid, started_at=time.time())
    workloads.save(ctx, record)
    return record
