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
    workload = isobox.run("busybox", ["sleep", "60"], detach=True, name="api", root=root).record
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
    assert [v.name for v in isobox.list_volumes(root=root)] == ["apivol"]
    isobox.run("busybox", ["sh", "-c", "echo one > /state; sleep 60"], detach=True, name="snapme", root=root)
    isobox.wait("snapme", timeout_s=0.5, root=root)
    made = isobox.snapshot_create("snapme", "s1", root=root)
    assert made.content.startswith("writable layer")
    assert [s.name for s in isobox.list_snapshots("snapme", root=root)] == ["s1"]
    isobox.stop("snapme", timeout_s=1, root=root)
    image = isobox.commit("snapme", "localhost/api-commit:1", message="from the API", root=root)
    assert image.id.startswith("sha256:")
    committed = isobox.run("localhost/api-commit:1", ["cat", "/state"], remove=True, root=root)
    assert committed.stdout == b"one\n"
    isobox.snapshot_remove("snapme", "s1", root=root)
    isobox.remove("snapme", force=True, root=root)
    isobox.volume_remove("apivol", root=root)
    assert isobox.list_volumes(root=root) == []


def test_docker_sdk_habits(isobox_root: Path) -> None:
    """A command as one string, sizes as "64m", env as a dict, exec with its output, and the store's image
    list still callable after other calls (the `images` subpackage must not shadow it)."""
    root = str(isobox_root)
    result = isobox.run("busybox", "sh -c 'echo \"$GREETING\"; cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                        "2>/dev/null || cat /sys/fs/cgroup/memory.max'", env={"GREETING": "hi there"},
                        memory="64m", remove=True, root=root)
    assert result.stdout.splitlines() == [b"hi there", str(64 << 20).encode()]
    isobox.run("busybox", "sleep 60", detach=True, name="sdk", root=root)
    done = isobox.exec("sdk", "sh -c 'echo out; echo err >&2; exit 4'", root=root)
    assert (done.exit_code, done.stdout, done.stderr) == (4, b"out\n", b"err\n")
    names = [names for _, names in isobox.list_images(root=root)]
    assert any(any(n.endswith("busybox:latest") for n in group) for group in names)
    isobox.remove("sdk", force=True, root=root)
