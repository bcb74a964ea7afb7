"""Records written by earlier isobox versions, brought to today's shape when they are read (pure)."""

from __future__ import annotations

from dataclasses import replace

from isobox.model.plan import DiskBoot, Firmware
from isobox.model.record import WorkloadRecord

# How earlier versions marked a disk-image VM and a clone's isolated NICs: labels on the plan.
_DISK = "org.isobox.vm.disk"
_CDROM = "org.isobox.vm.cdrom"
_SEED = "org.isobox.vm.cloud-init"
_FIRMWARE = "org.isobox.vm.firmware"
_ISOLATED = "org.isobox.vm.isolated-nics"
_OLD_LABELS = frozenset({_DISK, _CDROM, _SEED, _FIRMWARE, _ISOLATED})
_EXEC_DEVICES = "exec_devices"


def upgrade(record: WorkloadRecord) -> WorkloadRecord:
    plan = record.plan
    labels = dict(plan.labels)
    if not _OLD_LABELS & labels.keys() and _EXEC_DEVICES not in record.driver_info:
        return record
    if _DISK in labels and plan.disk_boot is None:
        plan = replace(
            plan,
            disk_boot=DiskBoot(
                disk=labels[_DISK],
                cdrom=labels.get(_CDROM),
                cloud_init=labels.get(_SEED),
                firmware=Firmware(labels.get(_FIRMWARE, "bios")),
            ),
        )
    if _ISOLATED in labels and not plan.isolated_macs:
        plan = replace(plan, isolated_macs=tuple(filter(None, labels[_ISOLATED].split(","))))
    plan = replace(plan, labels=tuple((k, v) for k, v in plan.labels if k not in _OLD_LABELS))
    info = dict(record.driver_info)
    exec_devices = record.exec_devices or info.pop(_EXEC_DEVICES, "") == "yes"
    return replace(record, plan=plan, driver_info=info, exec_devices=exec_devices)
