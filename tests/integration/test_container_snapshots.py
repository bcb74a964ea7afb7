"""Container snapshots: the writable layer saved, then restored over later changes (also while running)."""

from __future__ import annotations

import pytest
from tests.integration.conftest import Cli

from isobox.drivers.base import ExecSpec
from isobox.errors import ConflictError, NotFoundError
from isobox.model.spec import WorkloadSpec
from isobox.model.status import Status
from isobox.service import snapshots, workloads
from isobox.service.context import Context

pytestmark = pytest.mark.integration


def _sh(ctx: Context, name: str, script: str) -> int:
    return workloads.exec(ctx, name, ExecSpec(("sh", "-c", script)))


def test_snapshot_restore_running_container(ctx: Context) -> None:
    workloads.run(ctx, WorkloadSpec("busybox", ("sleep", "120"), name="snap", stop_timeout_s=1), detach=True)
    try:
        assert _sh(ctx, "snap", "echo one > /state; rm /etc/os-release") == 0
        info = snapshots.create(ctx, "snap", "first")
        assert info.content == "writable layer"
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
