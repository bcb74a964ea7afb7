"""VMs that boot a disk image (any OS) rather than an OCI image: `isobox vm create`."""

from __future__ import annotations

from pathlib import Path

from isobox.model import ids
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Resources
from isobox.service import workloads
from isobox.service.context import Context


def create_disk_vm(
    ctx: Context,
    disk: Path,
    *,
    cdrom: Path | None = None,
    cloud_init: Path | None = None,
    name: str | None = None,
    memory_bytes: int | None = None,
    cpus: float | None = None,
    start: bool = False,
    firmware: str = "bios",
) -> WorkloadRecord:
    from isobox.drivers.vm import anyos

    workload_id = ids.new_id()
    plan = anyos.plan(
        id=workload_id,
        name=ids.validate_name(name) if name else ids.random_name(),
        disk=disk,
        cdrom=cdrom,
        cloud_init=cloud_init,
        workload_dir=str(ctx.paths.workloads / workload_id),
        resources=Resources(memory_bytes=memory_bytes, cpus=cpus),
        firmware=firmware,
    )
    record = workloads.create_from_plan(ctx, plan)
    if start:
        record = workloads.start(ctx, record.id).record
    return record
