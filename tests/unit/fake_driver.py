"""A Driver that runs nothing: workloads are entries in memory, for unit tests of the service layer (names,
records, the lifecycle table, capabilities, rollback) without a runtime, QEMU or root. The real drivers
meet the same protocol in tests/integration/test_conformance.py."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from isobox.drivers.base import Created
from isobox.errors import InvalidStateError, NotFoundError, WorkloadError
from isobox.model.archive import PathStat
from isobox.model.capability import Capability
from isobox.model.plan import RunPlan
from isobox.model.record import Observation, ProcessTable, Stats, WorkloadRecord
from isobox.model.snapshot import SnapshotContent, SnapshotInfo
from isobox.model.spec import Kind, Resources
from isobox.model.status import Status
from isobox.model.streams import Attach, ExecSpec


@dataclass
class FakeWorkload:
    status: Status = Status.CREATED
    pid: int = 0
    exit_code: int | None = None
    snapshots: list[str] = field(default_factory=list)


class FakeDriver:
    """Workloads that "run" until stopped or killed. ``fail_create`` makes the next create fail (undoing its
    own half, as the protocol asks); ``lacks`` are the capabilities it refuses."""

    def __init__(self, kind: Kind = Kind.CONTAINER, lacks: dict[Capability, str] | None = None) -> None:
        self.kind = kind
        self.lacks = dict(lacks or {})
        self.workloads: dict[str, FakeWorkload] = {}
        self.deleted: list[str] = []
        self.updated: list[tuple[str, Resources]] = []
        self.fail_create: BaseException | None = None
        self.exec_code = 0
        self._pids = itertools.count(1000)

    def _get(self, record: WorkloadRecord) -> FakeWorkload:
        try:
            return self.workloads[record.id]
        except KeyError:
            raise NotFoundError("no such fake workload", op="fake", id=record.id) from None

    def create(self, plan: RunPlan) -> Created:
        self.workloads[plan.id] = FakeWorkload()
        if self.fail_create is not None:  # the contract: a failed create leaves nothing of itself
            failure, self.fail_create = self.fail_create, None
            del self.workloads[plan.id]
            raise failure
        return Created({"driver": "fake"})

    def missing_capabilities(self, record: WorkloadRecord) -> dict[Capability, str]:
        return dict(self.lacks)

    def start(
        self, record: WorkloadRecord, attach: Attach | None = None, *, during_create: Callable[[], None] | None = None
    ) -> int:
        if during_create is not None:
            during_create()
        workload = self._get(record)
        if workload.status is Status.RUNNING:
            raise InvalidStateError("already running", op="start", id=record.id)
        workload.status, workload.pid, workload.exit_code = Status.RUNNING, next(self._pids), None
        if attach is not None:  # a foreground run: it "exits" at once with its first argument as the code
            argv = record.plan.process.argv
            workload.status, workload.exit_code = Status.EXITED, int(argv[0]) if argv[0].isdigit() else 0
        return workload.pid

    def observe(self, record: WorkloadRecord) -> Observation:
        workload = self.workloads.get(record.id)
        if workload is None:
            return Observation(Status.EXITED, exit_code=255)
        return Observation(workload.status, workload.pid, workload.exit_code)

    def wait(self, record: WorkloadRecord, timeout_s: float | None = None) -> Observation:
        return self.observe(record)

    def stop(self, record: WorkloadRecord, timeout_s: float) -> None:
        workload = self._get(record)
        if workload.status in (Status.RUNNING, Status.PAUSED):
            workload.status, workload.exit_code = Status.EXITED, 143

    def kill(self, record: WorkloadRecord, signal: int) -> None:
        workload = self._get(record)
        if workload.status is not Status.RUNNING:
            raise InvalidStateError("not running", op="kill", id=record.id)
        workload.status, workload.exit_code = Status.EXITED, 128 + signal

    def attach(self, record: WorkloadRecord, attach: Attach) -> bool:
        return True

    def console(self, record: WorkloadRecord, attach: Attach) -> None:
        raise WorkloadError("no console", op="console", id=record.id)

    def pause(self, record: WorkloadRecord) -> None:
        self._get(record).status = Status.PAUSED

    def unpause(self, record: WorkloadRecord) -> None:
        self._get(record).status = Status.RUNNING

    def exec(self, record: WorkloadRecord, spec: ExecSpec, streams: Attach) -> int:
        return self.exec_code

    def stats(self, record: WorkloadRecord) -> Stats:
        return Stats(pids=1)

    def top(self, record: WorkloadRecord) -> ProcessTable:
        return ProcessTable(("PID", "CMD"), ((str(self._get(record).pid), " ".join(record.plan.process.argv)),))

    def sync_logs(self, record: WorkloadRecord) -> None:
        pass

    def snapshot_create(self, record: WorkloadRecord, name: str) -> SnapshotInfo:
        self._get(record).snapshots.append(name)
        return SnapshotInfo(name, SnapshotContent.FILES, 0.0)

    def snapshot_list(self, record: WorkloadRecord) -> list[SnapshotInfo]:
        return [SnapshotInfo(n, SnapshotContent.FILES, 0.0) for n in self._get(record).snapshots]

    def snapshot_restore(
        self, record: WorkloadRecord, name: str, *, during_create: Callable[[], None] | None = None
    ) -> int | None:
        if name not in self._get(record).snapshots:
            raise NotFoundError(f"no snapshot {name}", op="restore", id=record.id)
        return None

    def snapshot_remove(self, record: WorkloadRecord, name: str) -> None:
        self._get(record).snapshots.remove(name)

    def clone_plan(self, source: WorkloadRecord, plan: RunPlan) -> RunPlan:
        return plan

    def snapshot_clone(self, source: WorkloadRecord, name: str, target: WorkloadRecord) -> int:
        return self.start(target)

    def commit_layer(self, record: WorkloadRecord, out: BinaryIO, skip: frozenset[str]) -> None:
        out.write(b"")

    def replan(self, record: WorkloadRecord) -> None:
        self._get(record)

    def resize(self, record: WorkloadRecord, rows: int, columns: int) -> None:
        self._get(record)

    def stat_path(self, record: WorkloadRecord, path: str) -> PathStat:
        raise NotFoundError(f"no file {path} in a fake workload", op="copy", id=record.id)

    def copy_from(self, record: WorkloadRecord, path: str, out: BinaryIO) -> PathStat:
        return self.stat_path(record, path)

    def copy_to(self, record: WorkloadRecord, directory: str, tar: BinaryIO) -> None:
        self.stat_path(record, directory)

    def export_filesystem(self, record: WorkloadRecord, out: BinaryIO) -> None:
        out.write(b"")

    def update_resources(self, record: WorkloadRecord, resources: Resources) -> None:
        self.updated.append((record.id, resources))

    def delete(self, record: WorkloadRecord) -> None:
        self.workloads.pop(record.id, None)
        self.deleted.append(record.id)
