"""A VM's mounts as devices and guest commands (pure), and the disk volume store with real mkfs/e2fsck."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from isobox.config import Paths
from isobox.drivers.vm import volumes as vm_volumes
from isobox.drivers.vm.accel import Accel
from isobox.drivers.vm.qemu_args import BootFiles, VMFiles, build
from isobox.errors import ConflictError, InvalidArgumentError
from isobox.model.mounts import MountKind, MountPlan
from isobox.model.volume import DISK
from isobox.state.db import Database
from isobox.state.volumes import VolumeRepository
from isobox.state.workloads import WorkloadRepository
from isobox.storage.volumes import VolumeStore

FILES = VMFiles(Path("/w/abc"), Path("/run/isobox/vm/abc"))
BOOT = BootFiles(Path("/k/vmlinuz"), Path("/c/initramfs.cpio"))
MOUNTS = (
    MountPlan(MountKind.VOLUME, "/data/cache", "/v/cache/disk.ext4", False, "cache", disk=True),
    MountPlan(MountKind.VOLUME, "/data", "/v/shared/_data", True, "shared"),
    MountPlan(MountKind.BIND, "/src", "/home/me/src"),
    MountPlan(MountKind.TMPFS, "/tmp", "", tmpfs_options=("size=64m",)),
)


def test_mounts_become_shares_disks_and_tmpfs_parents_first() -> None:
    made = vm_volumes.of(MOUNTS)
    assert [s.tag for s in made.shares] == ["isobox-fs0", "isobox-fs1"]
    assert [(s.source, s.target, s.readonly) for s in made.shares] == [
        ("/v/shared/_data", "/data", True),
        ("/home/me/src", "/src", False),
    ]
    assert [(d.serial, d.image) for d in made.disks] == [("isobox-vol0", "/v/cache/disk.ext4")]
    assert [m.target for m in made.order] == ["/data", "/src", "/tmp", "/data/cache"]
    assert made.needs_shared_memory and made.blocks_memory_snapshots
    tmpfs_only = vm_volumes.of(MOUNTS[3:])
    assert not tmpfs_only.needs_shared_memory and not tmpfs_only.blocks_memory_snapshots


def test_guest_lines_quote_every_value() -> None:
    odd = MountPlan(MountKind.BIND, "/it's here", "/h")
    assert vm_volumes.guest_lines(vm_volumes.of((*MOUNTS, odd))) == [
        "isobox_mounts() {",
        "    isobox_virtiofs isobox-fs0 /data ro || return 1",
        "    isobox_virtiofs isobox-fs1 /src rw || return 1",
        "    isobox_tmpfs /tmp rw,size=64m || return 1",
        "    isobox_virtiofs isobox-fs2 '/it'\"'\"'s here' rw || return 1",
        "    isobox_disk isobox-vol0 /data/cache rw || return 1",
        "    :",
        "}",
    ]


def test_qemu_args_share_memory_only_when_a_directory_is_shared() -> None:
    args = build(id="abc", accel=Accel("tcg", "t"), memory_bytes=None, cpus=None, files=FILES, boot=BOOT,
                 mounts=vm_volumes.of(MOUNTS))  # fmt: skip
    assert args[args.index("-machine") + 1] == "pc,memory-backend=isobox-ram"
    assert "memory-backend-memfd,id=isobox-ram,size=256M,share=on" in args
    assert "socket,id=isobox-fs0,path=/run/isobox/vm/abc/isobox-fs0.sock" in args
    assert "vhost-user-fs-pci,chardev=isobox-fs1,tag=isobox-fs1" in args
    assert "file=/v/cache/disk.ext4,if=none,id=isobox-vol0,format=raw,cache=writeback" in args
    assert "virtio-blk-pci,drive=isobox-vol0,serial=isobox-vol0" in args
    plain = build(id="abc", accel=Accel("tcg", "t"), memory_bytes=None, cpus=None, files=FILES, boot=BOOT,
                  mounts=vm_volumes.of(MOUNTS[:1]))  # fmt: skip
    assert plain[plain.index("-machine") + 1] == "pc"
    assert not any("memory-backend" in a or "vhost-user" in a for a in plain)


needs_e2fs = pytest.mark.skipif(not shutil.which("mkfs.ext4"), reason="e2fsprogs not installed")


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    paths = Paths(lib=tmp_path / "lib", run=tmp_path / "run", assets=tmp_path / "assets")
    db = Database(tmp_path / "db.sqlite")
    return VolumeStore(paths, VolumeRepository(db), WorkloadRepository(db, tmp_path / "records"))


@needs_e2fs
def test_disk_volume_is_a_sparse_ext4_image_that_grows(store: VolumeStore) -> None:
    record, created = store.create("d", kind=DISK, size_bytes=32 * 1024**2)
    assert created and record.is_disk and record.size_bytes == 32 * 1024**2
    assert store.size_bytes("d") < 8 * 1024**2  # sparse: metadata only
    assert store.create("d")[0] == record  # an existing volume of any kind, when no kind is asked
    with pytest.raises(ConflictError, match="already exists as a disk volume"):
        store.create("d", kind="dir")
    with pytest.raises(ConflictError, match="running u1"):
        store.resize("d", 64 * 1024**2, ["u1"])
    with pytest.raises(InvalidArgumentError, match="shrinking"):
        store.resize("d", 16 * 1024**2, [])
    grown = store.resize("d", 64 * 1024**2, [])
    assert grown.size_bytes == 64 * 1024**2
    check = subprocess.run(["e2fsck", "-f", "-n", grown.path], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    blocks = subprocess.run(["dumpe2fs", "-h", grown.path], capture_output=True, text=True).stdout
    count = next(int(line.split()[-1]) for line in blocks.splitlines() if line.startswith("Block count:"))
    size = next(int(line.split()[-1]) for line in blocks.splitlines() if line.startswith("Block size:"))
    assert count * size == 64 * 1024**2


def test_bad_volume_options_leave_nothing(store: VolumeStore) -> None:
    with pytest.raises(InvalidArgumentError, match="unknown volume type"):
        store.create("x", kind="nfs")
    with pytest.raises(InvalidArgumentError, match="size= needs type=disk"):
        store.create("x", size_bytes=1024**3)
    with pytest.raises(InvalidArgumentError, match="at least 16M"):
        store.create("x", kind=DISK, size_bytes=1024)
    assert store.all() == [] and not (store.root / "x").exists()
    store.create("plain")
    with pytest.raises(InvalidArgumentError, match="only disk volumes have a size"):
        store.resize("plain", 1024**3, [])
