"""The VM commands through the `isobox` CLI, with the integration leak checks (cgroups, mounts) after
each test: snapshot create/list/clone/restore/rm, and a crash of the isobox process mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.integration.conftest import ISOBOX, Cli, processes_with

from isobox.linux.cgroups import WorkloadCgroup

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(240)]

COUNTER = 'i=0; while :; do i=$((i+1)); echo "$i"; sleep 0.3; done'


def counts(cli: Cli, name: str) -> list[int]:
    return [int(line) for line in cli("logs", name, check=True).stdout.split() if line.isdigit()]


def wait_count(cli: Cli, name: str, at_least: int, timeout_s: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cli("ps")  # ps refreshes running workloads, which brings a VM's log up to date
        values = counts(cli, name)
        if values and values[-1] >= at_least:
            return values
        time.sleep(0.3)
    raise AssertionError(f"{name}: counter did not reach {at_least}")


def test_snapshot_commands(cli: Cli) -> None:
    cli("run", "-d", "--vm", "--network", "none", "--name", "c1", "busybox", "sh", "-c", COUNTER, check=True)
    before = wait_count(cli, "c1", 3)[-1]
    assert cli("snapshot", "create", "c1", "s1", check=True).stdout.strip() == "s1 (disk+memory)"
    at_snapshot = counts(cli, "c1")[-1]  # the memory was saved somewhere between `before` and this
    listed = json.loads(cli("snapshot", "list", "c1", "--json", check=True).stdout)
    assert (
        [s["name"] for s in listed] == ["s1"] and listed[0]["content"] == "disk+memory" and listed[0]["size_bytes"] > 0
    )
    assert cli("snapshot", "create", "c1", "s1").returncode == 125  # names are unique

    cli("snapshot", "clone", "c1", "s1", "--name", "c2", check=True)
    first = wait_count(cli, "c2", 1)[0]
    assert before <= first <= at_snapshot + 3
    later = wait_count(cli, "c1", at_snapshot + 8)[-1]
    cli("snapshot", "restore", "c1", "s1", check=True)
    time.sleep(1.5)
    values = counts(cli, "c1")
    assert any(v < later for v in values[values.index(later) + 1 :])  # went back, then counts on

    cli("snapshot", "rm", "c1", "s1", check=True)
    assert json.loads(cli("snapshot", "list", "c1", "--json", check=True).stdout) == []
    ps = cli("ps", check=True).stdout
    assert "c1" in ps and "c2" in ps


def test_crash_of_the_isobox_process_leaves_nothing_after_rm(cli: Cli, isobox_root: Path) -> None:
    env = dict(os.environ, ISOBOX_ROOT=str(isobox_root))
    run = subprocess.Popen(
        [*ISOBOX, "run", "--vm", "--network", "none", "--name", "crash", "busybox", "sh", "-c", "echo up; sleep 600"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    assert run.stdout is not None
    assert run.stdout.readline() == b"up\n"
    os.kill(run.pid, signal.SIGKILL)  # isobox dies; the VM does not need it
    run.wait()
    workload_id = next((isobox_root / "lib/workloads").iterdir()).name
    qemus = processes_with(workload_id)
    assert qemus, "the VM should outlive the isobox process that started it"
    cli("rm", "-f", "crash", check=True)
    time.sleep(0.5)
    assert not [p for p in qemus if p.exists() and _state(p) != "Z"]
    assert not (isobox_root / "lib/workloads" / workload_id).exists()
    assert not (isobox_root / "run/vm" / workload_id[:32]).exists()


def _state(proc: Path) -> str:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_vm_host_memory_is_capped_by_its_cgroup(cli: Cli) -> None:
    cli("run", "-d", "--vm", "--network", "none", "--memory", "128m", "--name", "capped", "busybox", "sleep", "300",
        check=True, timeout=120)  # fmt: skip
    stats = json.loads(cli("stats", "--json", "capped").stdout)
    entry = stats[0] if isinstance(stats, list) else stats
    # stats shows the guest's RAM, as the user sized it; the host caps QEMU at that plus its own
    # overhead allowance (256 MiB) in the VM's cgroup: the host is protected.
    assert entry["memory_limit_bytes"] == 128 * 1024 * 1024, entry
    record = json.loads(cli("inspect", "capped").stdout)[0]
    cgroup = WorkloadCgroup.of(record["Id"])
    limit_file = "memory.max" if cgroup.unified else "memory.limit_in_bytes"
    memory_dir = next(d for d in cgroup.directories if cgroup.unified or d.parent.parent.name == "memory")
    assert int((memory_dir / limit_file).read_text()) == (128 + 256) * 1024 * 1024
    assert 0 < entry["memory_bytes"] < (128 + 256) * 1024 * 1024
    cli("rm", "-f", "capped", check=True, timeout=120)


def test_pause_and_unpause_a_vm(cli: Cli) -> None:
    """QMP stop/cont: a paused VM's guest makes no progress, then goes on; rm -f of a paused VM works."""
    cli("run", "-d", "--vm", "--network", "none", "--name", "v", "busybox", "sh", "-c", COUNTER, check=True)
    wait_count(cli, "v", 2)
    cli("pause", "v", check=True)
    assert json.loads(cli("inspect", "v", check=True).stdout)[0]["State"]["Status"] == "paused"
    frozen = counts(cli, "v")[-1]
    time.sleep(1.5)
    assert counts(cli, "v")[-1] <= frozen + 1  # at most a line already on its way
    cli("unpause", "v", check=True)
    wait_count(cli, "v", frozen + 3)
    cli("pause", "v", check=True)
    cli("rm", "-f", "v", check=True, timeout=60)
    assert json.loads(cli("ps", "-a", "--json", check=True).stdout) == []
