"""The service layer over a fake driver: names and uid ranges reserved once under concurrency, a failed or
killed create leaving nothing hidden (lock files included), the lifecycle table and capability refusals
enforced, restart policies with Docker's back-off."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from tests.fixtures.oci_build import Entry, commit_image, layer_tar
from tests.unit.fake_driver import FakeDriver

from isobox.errors import ConflictError, InvalidStateError, IsoboxError, UnsupportedError, WorkloadError
from isobox.model.capability import Capability
from isobox.model.mounts import MountKind, MountSpec
from isobox.model.plan import USERNS_SIZE
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Restart, Security, WorkloadSpec, next_restart_delay_s
from isobox.model.status import Status
from isobox.model.streams import ExecSpec
from isobox.service import control, restarts, snapshots, workloads
from isobox.service.context import Context, open_context
from isobox.state.locks import locked
from isobox.state.workloads import USERNS_FIRST

IMAGE = "localhost/tiny:1"


@pytest.fixture
def fake(ctx: Context) -> FakeDriver:
    driver = FakeDriver()
    ctx._drivers["container"] = driver
    commit_image(ctx.images, IMAGE, layer_tar([Entry("bin/tool", data=b"#!/bin/true\n", mode=0o755)]), {"Cmd": ["0"]})
    return driver


def spec(**fields: object) -> WorkloadSpec:
    return WorkloadSpec(image=IMAGE, networks=("none",), **fields)  # type: ignore[arg-type]


@pytest.fixture
def contexts(isobox_root: Path) -> Iterator[list[tuple[Context, FakeDriver]]]:
    """Several contexts on one root, as several isobox processes would have, each with its own fake."""
    made: list[tuple[Context, FakeDriver]] = []
    for _ in range(12):
        context = open_context(isobox_root, require_root=False)
        driver = FakeDriver()
        context._drivers["container"] = driver
        made.append((context, driver))
    yield made
    for context, _ in made:
        context.close()


def race(contexts: list[tuple[Context, FakeDriver]], make: object) -> tuple[list[WorkloadRecord], list[Exception]]:
    won: list[WorkloadRecord] = []
    lost: list[Exception] = []
    start = threading.Barrier(len(contexts))

    def one(context: Context) -> None:
        start.wait()
        try:
            won.append(make(context))  # type: ignore[operator]
        except IsoboxError as exc:
            lost.append(exc)

    threads = [threading.Thread(target=one, args=(c,)) for c, _ in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, lost


def test_a_name_is_reserved_once_under_concurrency(
    ctx: Context, fake: FakeDriver, contexts: list[tuple[Context, FakeDriver]]
) -> None:
    for _ in range(5):
        won, lost = race(contexts, lambda c: workloads.create(c, spec(name="same")))
        assert len(won) == 1 and len(lost) == len(contexts) - 1
        assert all(isinstance(e, ConflictError) and 'name "/same" is already in use by container' in str(e)
                   for e in lost)
        assert [r.name for r in ctx.records.workloads.all()] == ["same"]
        assert sum(len(d.workloads) for _, d in contexts) == 1, "a loser made something on the host"
        workloads.remove(contexts[0][0], "same")
        for _, driver in contexts:
            driver.workloads.clear()


def test_userns_ranges_never_overlap(
    ctx: Context, fake: FakeDriver, contexts: list[tuple[Context, FakeDriver]]
) -> None:
    auto = Security(userns="auto")
    sequential = [workloads.create(ctx, spec(security=auto)) for _ in range(20)]
    concurrent, lost = race(contexts, lambda c: workloads.create(c, spec(security=auto)))
    assert not lost
    bases = [r.plan.userns_base for r in sequential + concurrent]
    assert len(set(bases)) == len(bases) == 20 + len(contexts)
    assert all(b is not None and b >= USERNS_FIRST and (b - USERNS_FIRST) % USERNS_SIZE == 0 for b in bases)
    # A freed range is handed out again, lowest first.
    workloads.remove(ctx, sequential[3].id)
    assert workloads.create(ctx, spec(security=auto)).plan.userns_base == sequential[3].plan.userns_base


def test_a_failed_create_leaves_no_record(ctx: Context, fake: FakeDriver) -> None:
    fake.fail_create = WorkloadError("the runtime broke", op="create")
    with pytest.raises(WorkloadError, match="the runtime broke"):
        workloads.create(ctx, spec(name="broken", mounts=(MountSpec(MountKind.VOLUME, "/data"),)))
    assert ctx.records.workloads.all() == []
    assert fake.workloads == {}
    assert ctx.records.volumes.all() == [], "the anonymous volume made for it was not removed"
    workloads.create(ctx, spec(name="broken"))  # the name is free again


def test_a_killed_create_is_visible_and_removable(ctx: Context, fake: FakeDriver) -> None:
    """The record of a create that never finished says CREATING; once its creator is gone (its lock is
    free), `rm` and `system prune` finish it."""
    record = workloads.create(ctx, spec(name="half"))
    workloads.save(ctx, record.__class__(**{**record.__dict__, "status": Status.CREATING}))
    listed = workloads.list_workloads(ctx, all=True)
    assert [(r.name, r.status) for r in listed] == [("half", Status.CREATING)]
    assert workloads.stale_creating(ctx, listed[0])
    with workloads.locked_workload(ctx, record.id):  # a live creator holds the lock: not stale
        assert not _stale_from_another_process(ctx, record)
    workloads.remove(ctx, "half")
    assert ctx.records.workloads.all() == [] and record.id in fake.deleted


def _stale_from_another_process(ctx: Context, record: WorkloadRecord) -> bool:
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(workloads.stale_creating(ctx, record)))
    thread.start()
    thread.join()
    return result[0]


def test_the_lifecycle_table_is_enforced(ctx: Context, fake: FakeDriver) -> None:
    record = workloads.create(ctx, spec(name="life", command=("sleep",)))
    with pytest.raises(InvalidStateError, match="cannot exec workload life: it is created"):
        control.exec(ctx, "life", ExecSpec(("true",)))
    assert control.stop(ctx, "life").status is Status.CREATED  # stopping what does not run: no change
    workloads.start(ctx, "life")
    with pytest.raises(InvalidStateError, match="cannot start workload life: it is running"):
        workloads.start(ctx, "life")
    with pytest.raises(InvalidStateError, match="cannot remove workload life: it is running"):
        workloads.remove(ctx, "life")
    assert control.pause(ctx, "life").status is Status.PAUSED
    with pytest.raises(InvalidStateError, match="cannot exec workload life: it is paused"):
        control.exec(ctx, "life", ExecSpec(("true",)))
    stopped = control.stop(ctx, "life")
    assert (stopped.status, stopped.exit_code, stopped.stopped_by_user) == (Status.EXITED, 143, True)
    assert ctx.records.workloads.get(record.id).stopped_by_user


def test_capabilities_are_typed_refusals_with_the_drivers_reason(ctx: Context, fake: FakeDriver) -> None:
    fake.lacks = {Capability.EXEC_TTY: "this kind has no terminal for exec", Capability.CLONE: "not here"}
    workloads.create(ctx, spec(name="cap"))
    workloads.start(ctx, "cap")
    with pytest.raises(UnsupportedError, match="exec -t is not available for cap: this kind has no terminal"):
        control.exec(ctx, "cap", ExecSpec(("sh",), tty=True))
    fake.exec_code = 7
    assert control.exec(ctx, "cap", ExecSpec(("true",))) == 7
    snapshots.create(ctx, "cap", "s1")
    with pytest.raises(UnsupportedError, match="snapshot clone is not available for cap: not here"):
        snapshots.clone(ctx, "cap", "s1")


def test_rename_refuses_a_taken_name(ctx: Context, fake: FakeDriver) -> None:
    workloads.create(ctx, spec(name="one"))
    workloads.create(ctx, spec(name="two"))
    with pytest.raises(ConflictError, match='"/two" is already in use'):
        control.rename(ctx, "one", "two")
    assert control.rename(ctx, "one", "three").name == "three"
    assert sorted(r.name for r in ctx.records.workloads.all()) == ["three", "two"]


def test_lock_files_go_with_their_workload(ctx: Context, fake: FakeDriver) -> None:
    """run/locks does not gather one file per workload ever made: removal, a failed create and a lost name
    race all leave none."""
    for _ in range(3):
        record = workloads.create(ctx, spec())
        control.stop(ctx, workloads.start(ctx, record.id).record.id)
        workloads.remove(ctx, record.id)
    workloads.create(ctx, spec(name="kept"))
    with pytest.raises(ConflictError):
        workloads.create(ctx, spec(name="kept"))
    fake.fail_create = WorkloadError("the runtime broke", op="create")
    with pytest.raises(WorkloadError):
        workloads.create(ctx, spec(name="broken"))
    kept = ctx.records.workloads.get("kept")
    assert sorted(p.name for p in ctx.paths.locks.glob("workload-*")) == [f"workload-{kept.id}.lock"]


def _exited(ctx: Context, fake: FakeDriver, name: str, code: int, ran_s: float) -> WorkloadRecord:
    """Let the fake workload end with ``code`` after a run of ``ran_s`` seconds (as recorded)."""
    record = workloads.get(ctx, name)
    fake.workloads[record.id].status, fake.workloads[record.id].exit_code = Status.EXITED, code
    ended = workloads.get(ctx, name)
    assert ended.status is Status.EXITED and ended.exit_code == code
    shifted = replace(ended, started_at=(ended.finished_at or 0) - ran_s)
    workloads.save(ctx, shifted)
    return shifted


def test_restarts_back_off_as_dockers_and_are_counted(ctx: Context, fake: FakeDriver) -> None:
    workloads.start(ctx, workloads.create(ctx, spec(name="flaky", restart=Restart.parse("on-failure"))).id)
    delays = []
    for _ in range(4):
        _exited(ctx, fake, "flaky", 1, ran_s=0.5)
        assert restarts.reconcile(ctx) == []  # the back-off has not passed yet
        record = workloads.get(ctx, "flaky")
        expected = next_restart_delay_s(record.restart_delay_s, 0.5)
        time.sleep(expected + 0.05)
        assert [r.name for r in restarts.reconcile(ctx)] == ["flaky"]
        record = workloads.get(ctx, "flaky")
        assert record.status is Status.RUNNING
        delays.append(record.restart_delay_s)
    assert delays == [0.1, 0.2, 0.4, 0.8] and workloads.get(ctx, "flaky").restart_count == 4
    _exited(ctx, fake, "flaky", 1, ran_s=12.0)  # a long run resets the back-off
    time.sleep(0.15)
    assert restarts.reconcile(ctx) and workloads.get(ctx, "flaky").restart_delay_s == 0.1
    _exited(ctx, fake, "flaky", 0, ran_s=1.0)  # on-failure: a success is not restarted
    time.sleep(0.15)
    assert restarts.reconcile(ctx) == [] and workloads.get(ctx, "flaky").status is Status.EXITED


def test_stop_during_the_back_off_cancels_the_restart(ctx: Context, fake: FakeDriver) -> None:
    workloads.start(ctx, workloads.create(ctx, spec(name="always", restart=Restart.parse("always"))).id)
    _exited(ctx, fake, "always", 0, ran_s=0.5)
    control.stop(ctx, "always")
    time.sleep(0.15)
    assert restarts.reconcile(ctx) == [] and workloads.get(ctx, "always").stopped_by_user
    workloads.start(ctx, "always")  # a start by hand ends that
    _exited(ctx, fake, "always", 0, ran_s=0.5)
    time.sleep(0.15)
    assert restarts.reconcile(ctx)


def test_one_exit_is_handled_by_one_process(ctx: Context, fake: FakeDriver) -> None:
    workloads.start(ctx, workloads.create(ctx, spec(name="once", restart=Restart.parse("always"))).id)
    record = _exited(ctx, fake, "once", 1, ran_s=0.5)
    time.sleep(0.15)
    with locked(ctx.paths.locks, f"restart-{record.id}"):  # conmon's exit command is at it (waiting its back-off)
        assert not _in_thread(lambda: restarts.restart(ctx, record, wait=False))
    assert restarts.restart(ctx, record, wait=False)
    assert workloads.get(ctx, "once").restart_count == 1


def _in_thread(call: object) -> object:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(call()))  # type: ignore[operator]
    thread.start()
    thread.join()
    return result[0]
