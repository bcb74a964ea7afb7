"""`isobox compare` pieces that need no workload: summaries, the syscall count, the table, disk sizes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from isobox.cli import policy as cli
from isobox.model.spec import Kind
from isobox.service import footprint
from isobox.service.compare import Comparison, Isolation, KindResult, RunSample, syscall_surface

ISOLATION = Isolation("k", "s", "c", "n", "p")


def sample(first: float | None, total: float, pss: int = 10 << 20) -> RunSample:
    return RunSample(first, total, pss, pss, 4096, 0, "hi\n")


def comparison() -> Comparison:
    container = KindResult(Kind.CONTAINER, (sample(0.2, 0.3), sample(0.1, 0.2), sample(0.3, 0.4)), ISOLATION, 0)
    vm = KindResult(Kind.VM, (sample(4.0, 4.1, 200 << 20), sample(5.0, 5.2, 210 << 20)), ISOLATION, 35 << 20)
    return Comparison("busybox", ("echo", "hi"), 3, 1, "6.1", (container, vm))


def test_summary_is_median_and_range() -> None:
    result = comparison().results[0].summary("first_output_s")
    assert result is not None
    assert (result.median, result.low, result.high) == (0.2, 0.1, 0.3)
    silent = KindResult(Kind.CONTAINER, (sample(None, 1.0),), ISOLATION, 0)
    assert silent.summary("first_output_s") is None


def test_syscall_surface_counts_allowed_names() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write", "clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0}]},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    assert syscall_surface(profile).startswith("3 host syscalls allowed")
    assert syscall_surface(None) == "all host syscalls (no seccomp filter)"
    assert syscall_surface({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [profile["syscalls"][2]]}).startswith(
        "all host syscalls but 1"
    )


def test_table_states_both_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    cli._print_comparison(comparison())
    text = capsys.readouterr().out
    assert "CONTAINER" in text and "VM" in text
    assert "0.20 s (0.10-0.30)" in text
    assert "4.50 s (4.00-5.00)" in text
    assert "the container started (to first output) 22.5x faster" in text
    assert "35.0 MiB" in text


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "compare.png"
    cli._plot(comparison(), target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dir_size_counts_blocks_once_and_follows_no_link(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "data").write_bytes(b"x" * 10000)
    os.link(tmp_path / "w" / "data", tmp_path / "w" / "again")
    (tmp_path / "big").write_bytes(b"y" * 100000)
    os.symlink(tmp_path / "big", tmp_path / "w" / "link")
    size = footprint.dir_size(tmp_path / "w")
    assert 10000 <= size < 100000
    assert footprint.dir_size(tmp_path / "missing") == 0


def test_sampler_finds_processes_by_id_and_their_children() -> None:
    marker = "compare-test-" + os.urandom(6).hex()
    parent = subprocess.Popen(["sh", "-c", f": {marker}; sleep 30 & wait"])
    pids: set[int] = set()
    try:
        sampler = footprint.Sampler(marker)
        for _ in range(200):
            pids = sampler.pids()
            if len(pids) >= 2:
                break
            time.sleep(0.01)
        assert parent.pid in pids and len(pids) >= 2  # sh, and its child sleep (whose argv lacks the marker)
        sampler.sample()
        assert sampler.peak_rss_bytes > 0
        assert sampler.main is not None and sampler.main.command in ("sh", "sleep")
    finally:
        for pid in pids - {parent.pid}:  # the sleep this test started through sh
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
