"""Container snapshots: the writable layer saved, then restored over later changes (also while running)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

from isobox.errors import ConflictError, NotFoundError
from isobox.model.spec import WorkloadSpec
from isobox.model.status import Status
from isobox.model.streams import ExecSpec
from isobox.service import control, logs, snapshots, workloads
from isobox.service.context import Context

pytestmark = pytest.mark.integration


def _sh(ctx: Context, name: str, script: str) -> int:
    return control.exec(ctx, name, ExecSpec(("sh", "-c", script)))


def test_snapshot_restore_running_container(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISOBOX_CRIU", "/bin/false")  # a CRIU whose `check` fails: files only, and a note why
    workloads.run(ctx, WorkloadSpec("busybox", ("sleep", "120"), name="snap", stop_timeout_s=1), detach=True)
    try:
        assert _sh(ctx, "snap", "echo one > /state; rm /etc/os-release") == 0
        info = snapshots.create(ctx, "snap", "first")
        assert info.content == "writable layer"
        assert info.note.startswith("process state not saved: `/bin/false check` fails on this host")
        with pytest.raises(ConflictError):
            snapshots.create(ctx, "snap", "first")
        assert _sh(ctx, "snap", "echo two > /state; touch /later; echo back > /etc/os-release") == 0
        record = snapshots.restore(ctx, "snap", "first")
        assert record.status is Status.RUNNING
        assert _sh(ctx, "snap", "grep -qx one /state && test ! -e /later && test ! -e /etc/os-release") == 0
        assert [s.name for s in snapshots.list_snapshots(ctx, "snap")] == ["first"]
        snapshots.remove(ctx, "snap", "first")
        assert snapshots.list_snapshots(ctx, "snap") == []
        with pytest.raises(NotFoundError):
            snapshots.restore(ctx, "snap", "first")
    finally:
        workloads.remove(ctx, "snap", force=True)


def test_snapshot_cli_for_a_container(cli: Cli) -> None:
    cli("run", "--name", "c", "busybox", "sh", "-c", "echo v1 > /f", check=True)
    assert "writable layer" in cli("snapshot", "create", "c", "s1", check=True).stdout
    cli("start", "-a", "c", check=True)
    assert "s1" in cli("snapshot", "list", "c").stdout
    cli("snapshot", "restore", "c", "s1", check=True)
    cli("snapshot", "rm", "c", "s1", check=True)
    assert "s1" not in cli("snapshot", "list", "c").stdout


def _usable_criu(ctx: Context) -> None:
    from isobox.drivers.container import checkpoint

    found = checkpoint.find(ctx.paths.run)
    if not found.usable:
        pytest.skip(found.reason)


def test_checkpoint_restores_the_processes_where_they_were(ctx: Context) -> None:
    """Where CRIU works (here: ISOBOX_CRIU pointing at CRIU >= 4.1; Debian 12's 3.17 fails `criu check`
    on kernels from 6.13 on), a running container's snapshot holds its processes, and restore resumes
    them from that moment: a counter in shell memory continues from the saved value, not from 1."""
    _usable_criu(ctx)
    counter = "i=0; while true; do i=$((i+1)); echo $i; echo $i > /count; sleep 0.2; done"
    # --network none: the namespace is runc's own; its loopback must work after the restore too.
    spec = WorkloadSpec("busybox", ("sh", "-c", counter), name="ck", networks=("none",))
    workloads.run(ctx, spec, detach=True)
    try:
        deadline = time.monotonic() + 10
        while _count(ctx) < 5:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        info = snapshots.create(ctx, "ck", "live")
        assert info.content == "writable layer+processes" and info.note == ""
        saved = _count(ctx)
        while _count(ctx) < saved + 5:  # it kept running after the checkpoint
            time.sleep(0.1)
        record = snapshots.restore(ctx, "ck", "live")
        assert record.status is Status.RUNNING and workloads.get(ctx, "ck").status is Status.RUNNING
        time.sleep(0.5)
        after = _count(ctx)
        assert saved <= after < saved + 5, (saved, after)  # resumed from the checkpoint, not restarted at 1
        values = [int(e.content) for e in logs.read(ctx, "ck") if e.content.strip()]
        drops = [value for previous, value in itertools.pairwise(values) if value < previous]
        assert len(drops) == 1 and 1 < drops[0] <= saved + 1, (saved, values)  # the log goes on after restore
        assert _sh(ctx, "ck", "ping -c1 -W2 127.0.0.1 >/dev/null") == 0
        # The restored container is a normal one: it stops, and its exit is recorded.
        assert control.stop(ctx, "ck", timeout_s=1).status is Status.EXITED
    finally:
        workloads.remove(ctx, "ck", force=True)


def _count(ctx: Context) -> int:
    record = workloads.get(ctx, "ck")
    upper = Path(record.plan.workload_dir) / "upper" / "count"
    try:
        return int(upper.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0
