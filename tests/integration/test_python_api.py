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
