"""`isobox update`: change a workload's limits and restart policy after it was created.

The driver applies the limits (a running container's cgroup at once and its config for later starts; a VM's
from its next boot, a running VM refused for its RAM and vCPUs, which QEMU cannot change live); the record
keeps them, so inspect shows them and later starts use them. Nothing is recorded when the driver refuses.
"""

from __future__ import annotations

from dataclasses import replace

from isobox.errors import InvalidArgumentError
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Restart, parse_size
from isobox.model.status import Status
from isobox.service import workloads
from isobox.service.context import Context


def update(ctx: Context, name_or_id: str, *, memory: str | int | None = None, cpus: float | None = None,
           pids_limit: int | None = None, restart: str | None = None) -> WorkloadRecord:
    """New limits (memory as "256m" or bytes, "0"/0 lifts it; cpus 0 lifts it; pids_limit 0 or -1 lifts it)
    and restart policy; an argument left None keeps what the workload has."""
    found = ctx.records.workloads.get(name_or_id)
    with workloads.locked_workload(ctx, found.id):
        record = workloads.get(ctx, found.id)
        if record.status in (Status.CREATING, Status.REMOVING):
            raise InvalidArgumentError(f"cannot update {record.name}: it is {record.status.value}", op="update",
                                       id=record.name)
        if cpus is not None and cpus < 0:
            raise InvalidArgumentError(f"invalid --cpus {cpus}: a number of CPUs is not negative", op="update")
        current = record.plan.resources
        resources = replace(
            current,
            memory_bytes=current.memory_bytes if memory is None else (_bytes(memory) or None),
            cpus=current.cpus if cpus is None else (cpus or None),
            pids_limit=current.pids_limit if pids_limit is None else (pids_limit if pids_limit > 0 else None),
        )
        plan = replace(record.plan, resources=resources,
                       restart=record.plan.restart if restart is None else Restart.parse(restart))
        if resources != current:
            workloads.driver_for(ctx, record.kind).update_resources(record, resources)
        updated = replace(record, plan=plan)
        workloads.save(ctx, updated)
    return updated


def _bytes(memory: str | int) -> int:
    if isinstance(memory, int):
        return memory
    return 0 if memory.strip() in ("0", "-1") else parse_size(memory, what="memory")
