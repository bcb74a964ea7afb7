"""VM snapshots: internal qcow2 snapshots of the VM's overlay disk, with the memory and device state
when the VM runs.

- Running VM: HMP ``savevm NAME`` writes RAM and device state next to a disk snapshot inside the
  qcow2 (docs/system/images.rst, "VM snapshots"); ``loadvm NAME`` goes back to it and the guest
  continues where it was; ``delvm`` removes it. QEMU 7.2's QMP ``snapshot-save`` is a job API
  with the same effect; the synchronous HMP form keeps this module small.
- Stopped VM: ``qemu-img snapshot -c|-a|-d`` on the disk (disk only); a snapshot that holds VM
  state is restored by starting QEMU with ``-loadvm NAME``.
- Listing reads the qcow2 header with ``qemu-img info -U`` (force-share), which works while QEMU
  holds the image lock.
- Clone: a new VM whose overlay is a copy of the source's (snapshots included), started with
  ``-loadvm``. A running source is paused for the copy: QMP ``stop`` drains and flushes all disks
  (vm_stop → bdrv_flush_all), so the file is consistent while it is copied.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from isobox.command import run
from isobox.drivers.vm import launch, qmp
from isobox.drivers.vm import volumes as vm_volumes
from isobox.errors import ConflictError, InvalidArgumentError, InvalidStateError, NotFoundError, WorkloadError
from isobox.model.plan import RunPlan
from isobox.model.record import WorkloadRecord
from isobox.model.snapshot import SnapshotContent, SnapshotInfo

if TYPE_CHECKING:
    from isobox.drivers.vm.driver import VMDriver

HMP_TIMEOUT_S = 300.0


def _has_memory(snapshot: SnapshotInfo) -> bool:
    return snapshot.content is SnapshotContent.DISK_AND_MEMORY


def _qemu_img(*args: str, op: str, path: Path) -> str:
    return run(["qemu-img", *args], op=op, path=str(path), timeout_s=HMP_TIMEOUT_S)


def _running(driver: VMDriver, record: WorkloadRecord) -> bool:
    files = driver.files(record)
    return launch.alive(launch.read_pid(files.pidfile), files.pidfile)


def _hmp(driver: VMDriver, record: WorkloadRecord, command: str, op: str) -> None:
    with qmp.connect(driver.files(record).qmp, record.id, timeout_s=HMP_TIMEOUT_S) as monitor:
        reply = monitor.hmp(command).strip()
    if reply:  # savevm/loadvm/delvm print only on error
        raise WorkloadError(reply, op=op, id=record.id)


def _refuse_volumes(record: WorkloadRecord, op: str) -> None:
    """A memory snapshot must hold every disk the guest has mounted, or the guest's file system
    cache would not match the disk on restore; volumes live outside the VM's snapshots."""
    if vm_volumes.of(record.plan.mounts).blocks_memory_snapshots:
        raise InvalidArgumentError(
            "a running VM with volumes or bind mounts cannot be snapshotted with its memory "
            "(volumes are not part of VM snapshots): stop it for a disk snapshot of its root disk",
            op=op,
            id=record.id,
        )


def list_snapshots(driver: VMDriver, record: WorkloadRecord) -> list[SnapshotInfo]:
    disk = driver.files(record).disk
    if not disk.exists():
        raise NotFoundError("the VM has no disk", op="list snapshots", id=record.id, path=str(disk))
    info = json.loads(_qemu_img("info", "-U", "--output=json", str(disk), op="list snapshots", path=disk))
    found = []
    for s in info.get("snapshots", []):
        state_bytes = int(s.get("vm-state-size", 0))
        found.append(
            SnapshotInfo(
                name=str(s["name"]),
                content=SnapshotContent.DISK_AND_MEMORY if state_bytes > 0 else SnapshotContent.DISK,
                created_at=float(s.get("date-sec", 0)) + float(s.get("date-nsec", 0)) / 1e9,
                size_bytes=state_bytes,
            )
        )
    return found


def find(driver: VMDriver, record: WorkloadRecord, name: str) -> SnapshotInfo:
    for snapshot in list_snapshots(driver, record):
        if snapshot.name == name:
            return snapshot
    raise NotFoundError(f"no snapshot {name!r}", op="find snapshot", id=record.id)


def create(driver: VMDriver, record: WorkloadRecord, name: str) -> SnapshotInfo:
    if not name or any(c in name for c in " \t\n\"'"):
        raise InvalidArgumentError(f"invalid snapshot name {name!r}", op="create snapshot", id=record.id)
    if any(s.name == name for s in list_snapshots(driver, record)):
        raise ConflictError(f"snapshot {name!r} already exists", op="create snapshot", id=record.id)
    disk = driver.files(record).disk
    if _running(driver, record):
        _refuse_volumes(record, "create snapshot")
        _hmp(driver, record, f"savevm {name}", "create snapshot")
    else:
        _qemu_img("snapshot", "-c", name, str(disk), op="create snapshot", path=disk)
    return find(driver, record, name)


def restore(
    driver: VMDriver, record: WorkloadRecord, name: str, during_create: Callable[[], None] | None = None
) -> int | None:
    """Go back to a snapshot; the VM's pid if it runs afterwards (memory state restored), else None."""
    snapshot = find(driver, record, name)
    disk = driver.files(record).disk
    if _running(driver, record):
        if not _has_memory(snapshot):
            raise InvalidStateError(
                f"snapshot {name!r} holds only the disk: stop the VM to restore it", op="restore snapshot", id=record.id
            )
        _hmp(driver, record, f"loadvm {name}", "restore snapshot")
        return launch.read_pid(driver.files(record).pidfile)
    if _has_memory(snapshot):
        return driver.start(record, loadvm=name, during_create=during_create)
    _qemu_img("snapshot", "-a", name, str(disk), op="restore snapshot", path=disk)
    return None


def remove(driver: VMDriver, record: WorkloadRecord, name: str) -> None:
    find(driver, record, name)
    disk = driver.files(record).disk
    if _running(driver, record):
        _hmp(driver, record, f"delvm {name}", "remove snapshot")
    else:
        _qemu_img("snapshot", "-d", name, str(disk), op="remove snapshot", path=disk)


def clone_plan(source: WorkloadRecord, plan: RunPlan) -> RunPlan:
    """A clone's guest holds the source's addresses: its NICs stay off the bridge (isolated), and it takes
    no part of the source's network plan (whose TAPs `rm` of the clone would otherwise delete)."""
    if source.plan.disk_boot is None and any(m.disk for m in source.plan.mounts):
        raise InvalidArgumentError(
            "a VM with disk volumes cannot be cloned: a disk volume is attached to one VM at a time",
            op="snapshot clone",
            id=source.name,
        )
    macs = tuple(i.mac for i in source.plan.network.interfaces) if source.plan.network else ()
    return replace(plan, network=None, isolated_macs=(*source.plan.isolated_macs, *macs))


def clone(driver: VMDriver, source: WorkloadRecord, name: str, target: WorkloadRecord) -> int:
    """Start ``target`` (already created from a plan like the source's) from the source's snapshot."""
    snapshot = find(driver, source, name)
    source_disk, target_disk = driver.files(source).disk, driver.files(target).disk
    if _running(driver, source):
        with qmp.connect(driver.files(source).qmp, source.id) as monitor:
            monitor.command("stop")
            try:
                shutil.copyfile(source_disk, target_disk)
            finally:
                monitor.command("cont")
    else:
        shutil.copyfile(source_disk, target_disk)
    if _has_memory(snapshot):
        return driver.start(target, loadvm=name)
    _qemu_img("snapshot", "-a", name, str(target_disk), op="clone snapshot", path=target_disk)
    return driver.start(target)
