"""Files in and out of a workload (`docker cp`): tar streams through the workload's driver.

A container is reached through its root file system in any state; a VM through its guest agent while it
runs. A VM booted from a disk image has no agent and refuses (UnsupportedError).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import BinaryIO

from isobox.drivers import base as drivers
from isobox.errors import InvalidArgumentError, InvalidStateError
from isobox.model.archive import PathStat
from isobox.model.capability import Capability
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind
from isobox.model.status import Status
from isobox.service.context import Context
from isobox.service.workloads import driver_for, get


def _ready(ctx: Context, name_or_id: str, path: str, op: str) -> tuple[WorkloadRecord, drivers.Driver]:
    if not path.startswith("/"):
        raise InvalidArgumentError(f"the path {path!r} must be absolute", op=op, id=name_or_id)
    record = get(ctx, name_or_id)
    if record.status in (Status.CREATING, Status.REMOVING):
        raise InvalidStateError(f"cannot copy files of {record.name}: it is {record.status.value}", op=op,
                                id=record.name)
    if record.kind is Kind.VM and record.status is not Status.RUNNING:
        raise InvalidStateError(f"cannot copy files of VM {record.name}: it is {record.status.value} (its guest "
                                "agent answers while it runs)", op=op, id=record.name)
    driver = driver_for(ctx, record.kind)
    drivers.require(driver, record, Capability.COPY, op=op)
    return record, driver


@contextlib.contextmanager
def _still(driver: drivers.Driver, record: WorkloadRecord) -> Iterator[None]:
    """A running container is frozen while its files are walked from the host (as dockerd does since
    CVE-2018-15664): no process inside can swap a directory for a symlink between a path's resolution and
    its use. A VM's files are walked inside its guest, by the guest's own kernel."""
    frozen = record.kind is Kind.CONTAINER and record.status is Status.RUNNING
    if frozen:
        driver.pause(record)
    try:
        yield
    finally:
        if frozen:
            driver.unpause(record)


def stat_path(ctx: Context, name_or_id: str, path: str) -> PathStat:
    record, driver = _ready(ctx, name_or_id, path, "stat path")
    with _still(driver, record):
        return driver.stat_path(record, path)


def copy_from(ctx: Context, name_or_id: str, path: str, out: BinaryIO) -> PathStat:
    record, driver = _ready(ctx, name_or_id, path, "copy from workload")
    with _still(driver, record):
        return driver.copy_from(record, path, out)


def copy_to(ctx: Context, name_or_id: str, directory: str, tar: BinaryIO) -> None:
    record, driver = _ready(ctx, name_or_id, directory, "copy to workload")
    with _still(driver, record):
        driver.copy_to(record, directory, tar)
