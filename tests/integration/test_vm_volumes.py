"""Volumes for VMs with real QEMU: a directory volume shared live between a container and a VM over
virtiofs, disk volumes (virtio-blk ext4) that outlive the VM and grow, read-only, and the refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.integration.conftest import Cli, processes_with

from isobox.linux.cgroups import WorkloadCgroup
from isobox.service.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(240)]

VM = ("run", "--rm", "--vm", "--network", "none")


def _volumes(cli: Cli) -> dict[str, dict[str, object]]:
    return {v["name"]: v for v in json.loads(cli("volume", "ls", "--json").stdout)}


def test_container_and_vm_share_one_volume_live(cli: Cli) -> None:
    cli("volume", "create", "shared", check=True)
    # The container writes, then waits (both running at once) for the VM's answer in the same volume.
    waiter = "echo from-container > /v/c.txt; while [ ! -f /v/vm.txt ]; do sleep 0.1; done; cat /v/vm.txt"
    cli("run", "-d", "--name", "c", "--network", "none", "-v", "shared:/v", "busybox", "sh", "-c", waiter, check=True)
    deadline = time.monotonic() + 20
    while cli("exec", "c", "cat", "/v/c.txt").stdout != "from-container\n":
        assert time.monotonic() < deadline, "the container never wrote its file"
        time.sleep(0.2)
    # Written aside, then renamed: the waiting container must not see the file before its content.
    answer = "cat /v/c.txt; echo from-vm > /v/vm.tmp && mv /v/vm.tmp /v/vm.txt"
    done = cli(*VM, "-v", "shared:/v", "busybox", "sh", "-c", answer, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "from-container\n"
    assert json.loads(cli("wait", "c").stdout or "0") == 0
    assert cli("logs", "c").stdout == "from-vm\n"
    assert _volumes(cli)["shared"]["kind"] == "dir"


def test_bind_mount_and_read_only_in_a_vm(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("host data")
    script = "cat /h/in.txt; echo; echo no > /h/out.txt || echo refused"
    done = cli(*VM, "-v", f"{tmp_path}:/h:ro", "busybox", "sh", "-c", script, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "host data\nrefused\n"
    assert "Read-only file system" in done.stderr
    assert not (tmp_path / "out.txt").exists()
    refused = cli(*VM, "-v", f"{tmp_path / 'in.txt'}:/in.txt", "busybox", "true")
    assert refused.returncode == 125 and "can bind-mount directories only" in refused.stderr


def test_disk_volume_outlives_the_vm_and_grows(cli: Cli) -> None:
    cli("volume", "create", "--opt", "type=disk", "--opt", "size=32m", "vdata", check=True)
    assert _volumes(cli)["vdata"]["kind"] == "disk"
    write = "echo kept > /data/f; df -k /data | tail -n1"
    done = cli(*VM, "-v", "vdata:/data", "busybox", "sh", "-c", write, timeout=120)
    assert done.returncode == 0, done.stderr
    small = int(done.stdout.split()[1])
    cli("volume", "resize", "vdata", "64m", check=True)
    read = "cat /data/f; df -k /data | tail -n1; mount | grep ' /data '"
    done = cli(*VM, "-v", "vdata:/data", "busybox", "sh", "-c", read, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "kept"
    assert int(lines[1].split()[1]) > small * 1.8  # 32 → 64 MiB, less the journal and metadata
    assert "type ext4" in lines[2]
    # A container cannot mount a disk volume, and says why; a running user blocks resize and rm.
    refused = cli("run", "--rm", "-v", "vdata:/data", "busybox", "true")
    assert refused.returncode == 125 and "only VMs can mount" in refused.stderr
    cli("run", "-d", "--vm", "--network", "none", "--name", "holder", "-v", "vdata:/data", "busybox", "sleep", "300",
        check=True, timeout=120)  # fmt: skip
    busy = cli("volume", "resize", "vdata", "128m")
    assert busy.returncode == 125 and "in use by running holder" in busy.stderr
    snapshot = cli("snapshot", "create", "holder", "s1")
    assert snapshot.returncode == 125 and "volumes are not part of VM snapshots" in snapshot.stderr
    cli("rm", "-f", "holder", check=True, timeout=120)
    cli("volume", "rm", "vdata", check=True)


def test_anonymous_vm_volume_is_a_disk_removed_with_rm_v(cli: Cli) -> None:
    cli("run", "--vm", "--network", "none", "--name", "anon", "-v", "/scratch", "busybox", "sh", "-c",
        "echo x > /scratch/f", check=True, timeout=120)  # fmt: skip
    volumes = list(_volumes(cli).values())
    assert len(volumes) == 1 and volumes[0]["kind"] == "disk" and volumes[0]["anonymous"]
    cli("rm", "-v", "anon", check=True)
    assert _volumes(cli) == {}


def test_new_volume_gets_the_image_content_in_a_vm(cli: Cli) -> None:
    # As for containers: an empty new volume mounted over /etc starts with the image's /etc.
    done = cli(*VM, "-v", "etccopy:/etc", "busybox", "sh", "-c", "ls /etc", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "passwd" in done.stdout.split()
    assert (Path(str(_volumes(cli)["etccopy"]["path"])) / "passwd").is_file()


def test_virtiofsd_ends_with_the_vm(cli: Cli) -> None:
    cli("run", "-d", "--vm", "--network", "none", "--name", "sh1", "-v", "s:/s", "busybox", "sleep", "300",
        check=True, timeout=120)  # fmt: skip
    pids = json.loads(cli("inspect", "sh1").stdout)[0]
    host = [Path(f"/proc/{pid}/comm").read_text().strip() for pid in WorkloadCgroup.of(pids["Id"]).pids()]
    assert "virtiofsd" in host, host  # in the VM's own cgroup, beside QEMU
    assert processes_with(f"{pids['Id'][:32]}/isobox-fs0.sock"), "the marker finds the running virtiofsd"
    cli("rm", "-f", "sh1", check=True, timeout=120)
    assert processes_with(f"{pids['Id'][:32]}/isobox-fs0.sock") == []


def _image_with_volume(ctx: Context, target: str) -> None:
    """busybox with VOLUME ``target`` declared in its config, as localhost/withvol:1."""
    from isobox.images import builtin
    from isobox.images.store import OCI_CONFIG

    parent = builtin.install(ctx.images)
    config = ctx.images.config_document(parent)
    config["config"]["Volumes"] = {target: {}}
    blob = json.dumps(config).encode()
    manifest = json.loads(ctx.images.blobs.read(parent.manifest_digest))
    manifest["config"] = {"mediaType": OCI_CONFIG, "digest": ctx.images.blobs.put_bytes(blob), "size": len(blob)}
    ctx.images.commit(json.dumps(manifest).encode(), ["localhost/withvol:1"])


def test_image_volumes_of_a_vm_are_disk_volumes_with_the_image_content(cli: Cli, ctx: Context) -> None:
    _image_with_volume(ctx, "/etc")
    script = "test -f /etc/passwd && echo has-passwd; echo kept > /etc/mine; mount | grep -c ' /etc type ext4'"
    cli("run", "--vm", "--network", "none", "--name", "iv", "localhost/withvol:1", "sh", "-c", script,
        check=True, timeout=120)  # fmt: skip
    assert cli("logs", "iv").stdout == "has-passwd\n1\n"
    volumes = list(_volumes(cli).values())
    assert len(volumes) == 1 and volumes[0]["kind"] == "disk" and volumes[0]["anonymous"]
    cli("rm", "-v", "iv", check=True)
    assert _volumes(cli) == {}


def test_share_survives_a_restart_and_a_vanished_source_fails_cleanly(cli: Cli, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    cli("create", "--vm", "--network", "none", "--name", "rs", "-v", f"{shared}:/s", "busybox", "sh", "-c",
        "date +%s%N >> /s/boots", check=True, timeout=120)  # fmt: skip
    for _ in range(2):
        cli("start", "rs", check=True, timeout=120)
        assert json.loads(cli("wait", "rs", timeout=120).stdout or "1") == 0
    assert len((shared / "boots").read_text().splitlines()) == 2  # virtiofsd is started again on each start
    (shared / "boots").unlink()
    shared.rmdir()
    done = cli("start", "rs", timeout=120)
    assert done.returncode == 1 and f"volume source {shared} is not a directory" in done.stderr  # as docker start
    record = json.loads(cli("inspect", "rs").stdout)[0]
    assert record["State"]["Status"] != "running"
    assert processes_with(f"{record['Id'][:32]}/isobox-fs") == []
