"""Secure by default: an escape probe inside a default container, limits enforced, hostile images contained."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
from tests.fixtures.oci_build import Entry, commit_image, layer_tar
from tests.integration.conftest import Cli

from isobox.service.context import open_context

pytestmark = pytest.mark.integration
PROBE = Path(__file__).with_name("escape_probe.sh")


def test_escape_probe_is_blocked_everywhere(cli: Cli) -> None:
    host_name = socket.gethostname()
    done = cli("run", "--rm", "-e", f"HOST_PID={os.getpid()}", "busybox", "sh", "-c", PROBE.read_text())
    lines = done.stdout.splitlines()
    assert len(lines) == 18, done.stdout + done.stderr
    escaped = [line for line in lines if not line.startswith("blocked")]
    assert escaped == [], done.stdout
    assert socket.gethostname() == host_name


def test_privileged_really_lifts_the_limits(cli: Cli) -> None:
    """The probe is not vacuous: with --privileged the same checks do get through."""
    done = cli("run", "--rm", "--privileged", "-e", f"HOST_PID={os.getpid()}", "busybox", "sh", "-c", PROBE.read_text())
    escaped = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("ESCAPED")}
    assert {"mount", "load-module", "sys-admin-cap"} <= escaped, done.stdout


def test_cap_drop_and_add(cli: Cli) -> None:
    done = cli(
        "run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "busybox", "grep", "CapEff", "/proc/self/status"
    )
    assert done.stdout.split()[1] == f"{1 << 12:016x}"
    done = cli("run", "--rm", "--cap-add", "NOT_A_CAP", "busybox", "true")
    assert done.returncode == 125 and "NOT_A_CAP" in done.stderr


def test_memory_hog_is_oom_killed_and_reported(cli: Cli) -> None:
    done = cli(
        "run",
        "--name",
        "hog",
        "--memory",
        "32m",
        "busybox",
        "sh",
        "-c",
        'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived',
    )
    assert done.returncode == 137 and "survived" not in done.stdout
    info = json.loads(cli("inspect", "hog").stdout)[0]
    assert info["State"]["OOMKilled"] is True and info["State"]["ExitCode"] == 137
    assert "Exited (137)" in cli("ps", "-a", "--filter", "name=hog").stdout


def test_fork_bomb_stops_at_pids_limit(cli: Cli) -> None:
    cli("run", "-d", "--name", "bomb", "--pids-limit", "20", "busybox", "sleep", "60", check=True)
    done = cli("exec", "bomb", "sh", "-c", "while true; do sleep 30 & done")
    assert done.returncode != 0 and "can't fork" in done.stderr
    stats = json.loads(cli("stats", "--json", "bomb").stdout)[0]
    assert 15 <= stats["pids"] <= 20


def test_cpu_quota_is_applied(cli: Cli) -> None:
    cli("run", "-d", "--name", "cpu", "--cpus", "0.5", "--cpu-shares", "512", "busybox", "sleep", "30", check=True)
    record = json.loads(cli("inspect", "cpu").stdout)[0]
    group = f"/sys/fs/cgroup/cpu/isobox/{record['Id']}"
    if Path(group).is_dir():  # cgroup v1 (this host)
        assert Path(group, "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert Path(group, "cpu.shares").read_text().strip() == "512"
    else:  # cgroup v2
        assert Path(f"/sys/fs/cgroup/isobox/{record['id']}/cpu.max").read_text().split()[0] == "50000"


def test_hostile_image_cannot_point_the_runtime_outside(cli: Cli, isobox_root: Path, tmp_path: Path) -> None:
    """An image whose /proc, /dev, /etc/hosts and /etc/passwd are symlinks to host paths, with a /proc WORKDIR."""
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep").write_text("untouched")
    ctx = open_context(isobox_root)
    busybox = ctx.images.layer_dirs(_busybox(ctx))[0]
    entries = [
        Entry("proc", "symlink", target="/"),
        Entry("dev", "symlink", target=str(canary)),
        Entry("etc/hosts", "symlink", target="/etc/shadow"),
        Entry("etc/passwd", "symlink", target="../../../../../etc/shadow"),
    ]
    commit_image(
        ctx.images, "localhost/hostile:1", layer_tar(entries, Path(busybox)), {"Cmd": ["sh", "-c", "echo ran"]}
    )
    done = cli("run", "--rm", "localhost/hostile:1")
    assert done.stdout == "ran\n", done.stderr
    assert sorted(os.listdir(canary)) == ["keep"] and (canary / "keep").read_text() == "untouched"
    commit_image(
        ctx.images,
        "localhost/hostile:2",
        layer_tar([], Path(busybox)),
        {"Cmd": ["true"], "WorkingDir": "/proc/self/fd/7"},
    )
    done = cli("run", "--rm", "localhost/hostile:2")
    assert done.returncode == 125 and "inside /proc" in done.stderr
    # /etc/passwd is a symlink out of the image: it is treated as absent, never read from the host.
    done = cli("run", "--rm", "-u", "root", "localhost/hostile:1", "id", "-u")
    assert done.returncode == 125 and "unable to find user root: no matching entry in passwd file" in done.stderr


def _busybox(ctx: object) -> object:
    from isobox.images import builtin

    return builtin.install(ctx.images)  # type: ignore[attr-defined]


def test_userns_auto_maps_root_to_an_unprivileged_range(cli: Cli, isobox_root: Path) -> None:
    cli(
        "run",
        "-d",
        "--name",
        "remapped",
        "--userns",
        "auto",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/uid_map; echo mine > /owned; id -u; sleep 30",
        check=True,
    )
    time.sleep(1.0)
    uid_map, written_as = cli("logs", "remapped").stdout.split("\n")[:2]
    host_base = int(uid_map.split()[1])
    assert uid_map.split()[0] == "0" and host_base >= 1_000_000 and written_as == "0"
    record = json.loads(cli("inspect", "remapped").stdout)[0]
    upper = Path(record["Isobox"]["WorkloadDir"]) / "upper" / "owned"
    assert upper.stat().st_uid == host_base  # root inside wrote the file as an unprivileged host uid
    second = cli("run", "--rm", "--userns", "auto", "busybox", "cat", "/proc/self/uid_map").stdout.split()
    assert int(second[1]) != host_base  # ranges never overlap


def test_exec_into_a_remapped_container_on_a_network(cli: Cli, isobox_root: Path) -> None:
    # The container's network namespace belongs to its user namespace, so runc exec can enter both.
    cli("network", "create", "unet", check=True)
    cli("run", "-d", "--name", "rn", "--network", "unet", "--userns", "auto", "busybox", "sleep", "60", check=True)
    record = json.loads(cli("inspect", "rn").stdout)[0]
    gateway = record["NetworkSettings"]["Gateway"]
    done = cli("exec", "rn", "sh", "-c", f"cat /proc/self/uid_map; ping -c1 -W2 {gateway} >/dev/null && echo reached")
    assert done.returncode == 0, done.stderr
    uid_map, reached = done.stdout.splitlines()
    assert uid_map.split()[:2] == ["0", str(record["Isobox"]["UsernsBase"])] and reached == "reached"
    netns_file = Path(record["NetworkSettings"]["SandboxKey"])
    assert Path(f"{netns_file}.userns").exists()
    cli("rm", "-f", "rn", check=True)
    assert not netns_file.exists() and not Path(f"{netns_file}.userns").exists()
    cli("network", "rm", "unet", check=True)


def test_volume_is_idmapped_for_a_remapped_container(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "host-file").write_text("mine")
    os.chown(tmp_path / "host-file", 1234, 1234)
    script = "ls -n /h/host-file | awk '{print $3}'; echo x > /v/written; echo y > /h/written"
    done = cli("run", "--rm", "--userns", "auto", "-v", "idv:/v", "-v", f"{tmp_path}:/h", "busybox", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1234\n"  # the host's owner, not nobody
    volume = json.loads(cli("volume", "inspect", "idv").stdout)[0]["Mountpoint"]
    assert (Path(volume) / "written").stat().st_uid == 0  # root inside wrote it as root, not as 1000000+
    assert (tmp_path / "written").stat().st_uid == 0
    plain = cli("run", "--rm", "-v", "idv:/v", "busybox", "sh", "-c", "echo z >> /v/written && cat /v/written")
    assert plain.stdout == "x\nz\n", plain.stderr


def test_escape_probe_under_userns(cli: Cli) -> None:
    done = cli(
        "run", "--rm", "--userns", "auto", "-e", f"HOST_PID={os.getpid()}", "busybox", "sh", "-c", PROBE.read_text()
    )
    escaped = [line for line in done.stdout.splitlines() if not line.startswith("blocked")]
    assert len(done.stdout.splitlines()) == 18 and escaped == [], done.stdout + done.stderr
