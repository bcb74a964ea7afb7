"""The Python API drives real containers the same way the CLI does."""

from __future__ import annotations

from pathlib import Path

import pytest

import isobox

pytestmark = pytest.mark.integration


def test_run_capture_detach_stop_remove(isobox_root: Path) -> None:
    root = str(isobox_root)
    result = isobox.run("busybox", ["sh", "-c", "echo hi; echo oops >&2; exit 3"], remove=True, root=root)
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"hi\n", b"oops\n")
    workload = isobox.run("busybox", ["sleep", "60"], detach=True, name="api", root=root).workload
    assert isobox.inspect("api", root=root).status.value == "running"
    assert [w.name for w in isobox.list_workloads(root=root)] == ["api"]
    isobox.stop("api", timeout_s=1, root=root)
    assert isobox.wait("api", root=root).exit_code == 137
    isobox.remove(workload.id, root=root)
    assert isobox.list_workloads(all=True, root=root) == []
    with pytest.raises(isobox.IsoboxError, match="no such workload"):
        isobox.inspect("api", root=root)


def test_volumes_snapshots_and_commit(isobox_root: Path) -> None:
    root = str(isobox_root)
    isobox.volume_create("apivol", root=root)
    wrote = isobox.run("busybox", ["sh", "-c", "echo kept > /d/f"], volumes=["apivol:/d"], remove=True, root=root)
    assert wrote.exit_code == 0
    read = isobox.run("busybox", ["cat", "/d/f"], volumes=["apivol:/d:ro"], remove=True, root=root)
    assert read.stdout == b"kept\n"
    assert [v.name for v in isobox.volumes(root=root)] == ["apivol"]
    isobox.run("busybox", ["sh", "-c", "echo one > /state; sleep 60"], detach=True, name="snapme", root=root)
    isobox.wait("snapme", timeout_s=0.5, root=root)
    made = isobox.snapshot_create("snapme", "s1", root=root)
    assert made.content.startswith("writable layer")
    assert [s.name for s in isobox.snapshots("snapme", root=root)] == ["s1"]
    isobox.stop("snapme", timeout_s=1, root=root)
    image = isobox.commit("snapme", "localhost/api-commit:1", message="from the API", root=root)
    assert image.id.startswith("sha256:")
    committed = isobox.run("localhost/api-commit:1", ["cat", "/state"], remove=True, root=root)
    assert committed.stdout == b"one\n"
    isobox.snapshot_remove("snapme", "s1", root=root)
    isobox.remove("snapme", force=True, root=root)
    isobox.volume_remove("apivol", root=root)
    assert isobox.volumes(root=root) == []
