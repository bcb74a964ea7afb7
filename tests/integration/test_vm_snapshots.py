"""Snapshots of a running VM: a counter in guest memory continues from the snapshot after restore,
and a clone started from the snapshot continues from it too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from isobox.drivers.logfile import read_entries
from isobox.drivers.vm import snapshots
from isobox.drivers.vm.driver import VMDriver
from isobox.model import ids
from isobox.model.record import WorkloadRecord
from isobox.model.snapshot import SnapshotContent
from isobox.model.spec import Kind, WorkloadSpec
from isobox.model.status import Status
from isobox.service import workloads
from isobox.service.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(300)]

COUNTER = 'i=0; while :; do i=$((i+1)); echo "$i"; sleep 0.2; done'


@pytest.fixture
def counter_vm(ctx: Context) -> Iterator[tuple[VMDriver, WorkloadRecord, Context]]:
    driver = VMDriver(ctx.paths)
    spec = WorkloadSpec(image="busybox", command=("sh", "-c", COUNTER), kind=Kind.VM)
    record = workloads.create_from_plan(ctx, workloads.plan(ctx, spec))
    yield driver, record, ctx
    driver.delete(record)


def counts(driver: VMDriver, record: WorkloadRecord) -> list[int]:
    driver.observe(record)  # brings the log up to date
    return [int(e.content) for e in read_entries(Path(record.plan.log_path)) if e.content.isdigit()]


def wait_count(driver: VMDriver, record: WorkloadRecord, at_least: int, timeout_s: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        values = counts(driver, record)
        if values and values[-1] >= at_least:
            return values
        time.sleep(0.2)
    raise AssertionError(f"counter did not reach {at_least}: {counts(driver, record)[-5:]}")


def test_snapshot_restore_and_clone_continue_the_counter(
    counter_vm: tuple[VMDriver, WorkloadRecord, Context],
) -> None:
    driver, record, ctx = counter_vm
    driver.start(record)
    wait_count(driver, record, 5)
    snap = snapshots.create(driver, record, "s1")
    at_snapshot = counts(driver, record)[-1]
    assert snap.content is SnapshotContent.DISK_AND_MEMORY
    assert [s.name for s in snapshots.list_snapshots(driver, record)] == ["s1"]
    later = wait_count(driver, record, at_snapshot + 10)[-1]

    assert snapshots.restore(driver, record, "s1")
    values = wait_count(driver, record, 0)
    time.sleep(1.5)
    values = counts(driver, record)
    after = values[values.index(later) + 1 :]
    resumed = next(v for v in after if v < later)  # the counter went back to the snapshot's value
    assert at_snapshot <= resumed <= at_snapshot + 3, (at_snapshot, later, after)

    clone_id = ids.new_id()
    clone_plan = replace(record.plan, id=clone_id, name=clone_id[:12], workload_dir=str(ctx.paths.workloads / clone_id))
    driver.create(clone_plan)
    clone = replace(record, id=clone_id, name=clone_plan.name, plan=clone_plan)
    try:
        snapshots.clone(driver, record, "s1", clone)
        first = wait_count(driver, clone, 1)[0]
        assert at_snapshot <= first <= at_snapshot + 3
        assert driver.observe(clone).status is Status.RUNNING
    finally:
        driver.delete(clone)

    snapshots.remove(driver, record, "s1")
    assert snapshots.list_snapshots(driver, record) == []


def test_disk_snapshot_of_stopped_vm(counter_vm: tuple[VMDriver, WorkloadRecord, Context]) -> None:
    driver, record, _ctx = counter_vm
    snap = snapshots.create(driver, record, "clean")
    assert snap.content is SnapshotContent.DISK
    assert snapshots.restore(driver, record, "clean") is None  # disk only: the VM stays stopped
    snapshots.remove(driver, record, "clean")
    assert snapshots.list_snapshots(driver, record) == []
