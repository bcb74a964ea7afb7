"""A VM's volumes, bind mounts and tmpfs: the same MountPlans a container gets, made into devices.

- Directory volumes and bind mounts are shared live with the host, and so with every container
  that mounts the same directory, over virtiofs: one ``virtiofsd`` (QEMU's, /usr/lib/qemu) per
  share serves the directory as a vhost-user device, and the guest mounts it by tag (the cloud
  kernel has CONFIG_VIRTIO_FS=m). Chosen over the other ways a VM can see a host directory:
  virtio-9p is missing from the cloud kernel (only the generic flavour has it, which boots about
  twice as slowly under TCG), and an NFS or SMB export needs a host server, a network between host
  and guest (a ``--network none`` VM has none) and its own ID mapping. virtiofsd needs neither:
  it passes the guest's uids through, as a bind mount does for a container, and runs sandboxed
  (its own mount namespace, pivot_root into the shared directory).
  virtiofs requires guest RAM the daemon can map, so a VM with a share has a shared memfd memory
  backend (docs/system/devices/vhost-user.rst). cache=auto gives NFS's close-to-open consistency: a
  file opened after another workload closed it shows what that one wrote, and names and attributes
  may lag up to 1 s; the host (and so a container) sees the guest's writes at once. Measured here
  on a 64 MiB write/read and 500 small files, it spent about 1.4 s where cache=none (every access a
  round trip to virtiofsd) spent 2.4 s.
- Disk volumes (``volume create --opt type=disk``) are raw ext4 images on virtio-blk, found in the
  guest by serial number. For data only VMs use: the guest's own page cache and file system,
  no daemon.
- tmpfs mounts are made by the guest in its RAM.

Each virtiofsd exits when its QEMU disconnects, and runs in the VM's cgroup, so deleting the VM
ends any that are left. Neither share nor volume disk can be part of a memory snapshot (a
vhost-user-fs device cannot be migrated; a raw disk has no internal snapshots), so
``snapshots.py`` refuses them before QEMU does.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from isobox.errors import HostError, WorkloadError
from isobox.linux.cgroups import WorkloadCgroup
from isobox.model.mounts import MountKind, MountPlan

VIRTIOFSD = Path("/usr/lib/qemu/virtiofsd")
MEMORY_BACKEND_ID = "isobox-ram"


@dataclass(frozen=True)
class Share:
    """A host directory served to the guest by virtiofsd under ``tag``."""

    tag: str
    source: str
    target: str
    readonly: bool


@dataclass(frozen=True)
class Disk:
    """A disk volume: a raw ext4 image attached as virtio-blk with this serial."""

    serial: str
    image: str
    target: str
    readonly: bool


@dataclass(frozen=True)
class Tmpfs:
    target: str
    options: tuple[str, ...]
    readonly: bool


@dataclass(frozen=True)
class VMMounts:
    shares: tuple[Share, ...] = ()
    disks: tuple[Disk, ...] = ()
    tmpfs: tuple[Tmpfs, ...] = ()
    order: tuple[Share | Disk | Tmpfs, ...] = ()  # parents before children, as the guest mounts them

    @property
    def needs_shared_memory(self) -> bool:
        return bool(self.shares)

    @property
    def blocks_memory_snapshots(self) -> bool:
        return bool(self.shares or self.disks)


def of(mounts: tuple[MountPlan, ...]) -> VMMounts:
    shares: list[Share] = []
    disks: list[Disk] = []
    tmpfs: list[Tmpfs] = []
    order: list[Share | Disk | Tmpfs] = []
    for item in sorted(mounts, key=lambda m: m.target.count("/")):
        made: Share | Disk | Tmpfs
        if item.kind is MountKind.TMPFS:
            made = Tmpfs(item.target, item.tmpfs_options, item.readonly)
            tmpfs.append(made)
        elif item.disk:
            made = Disk(f"isobox-vol{len(disks)}", item.source, item.target, item.readonly)
            disks.append(made)
        else:
            made = Share(f"isobox-fs{len(shares)}", item.source, item.target, item.readonly)
            shares.append(made)
        order.append(made)
    return VMMounts(tuple(shares), tuple(disks), tuple(tmpfs), tuple(order))


def socket_path(sockets: Path, share: Share) -> Path:
    return sockets / f"{share.tag}.sock"


def qemu_args(mounts: VMMounts, sockets: Path) -> list[str]:
    """Devices for the shares and disks (the memory backend is qemu_args.base's, see memory_backend)."""
    args: list[str] = []
    for share in mounts.shares:
        args += ["-chardev", f"socket,id={share.tag},path={socket_path(sockets, share)}"]
        args += ["-device", f"vhost-user-fs-pci,chardev={share.tag},tag={share.tag}"]
    for disk in mounts.disks:
        readonly = ",readonly=on" if disk.readonly else ""
        args += ["-drive", f"file={disk.image},if=none,id={disk.serial},format=raw,cache=writeback{readonly}"]
        args += ["-device", f"virtio-blk-pci,drive={disk.serial},serial={disk.serial}"]
    return args


def memory_backend(memory_mib: int) -> list[str]:
    """Guest RAM in a memfd that virtiofsd can map (vhost-user needs share=on)."""
    return ["-object", f"memory-backend-memfd,id={MEMORY_BACKEND_ID},size={memory_mib}M,share=on"]


def guest_lines(mounts: VMMounts) -> list[str]:
    """The run script's isobox_mounts function; init.sh defines isobox_virtiofs, isobox_disk, isobox_tmpfs."""
    lines = ["isobox_mounts() {"]
    for item in mounts.order:
        options = "ro" if item.readonly else "rw"
        if isinstance(item, Share):
            words = ["isobox_virtiofs", item.tag, item.target, options]
        elif isinstance(item, Disk):
            words = ["isobox_disk", item.serial, item.target, options]
        else:
            words = ["isobox_tmpfs", item.target, ",".join((options, *item.options))]
        lines.append("    " + " ".join(shlex.quote(w) for w in words) + " || return 1")
    lines += ["    :", "}"]
    return lines


# virtiofsd cannot be left to --daemonize: it accepts QEMU's connection before it forks, so its parent
# would wait for a QEMU that is not started yet. A shell joins the VM's cgroup and leaves the daemon
# running in the background (re-parented to init when the shell exits); isobox waits for the socket.
_JOIN_AND_SPAWN = (
    'for procs in $ISOBOX_CGROUP_PROCS; do echo $$ > "$procs" || exit 125; done; '
    '"$@" </dev/null >/dev/null 2>>"$ISOBOX_LOG" &'
)


def start_daemons(
    mounts: VMMounts, sockets: Path, log: Path, cgroup: WorkloadCgroup, workload: str, timeout_s: float = 10.0
) -> None:
    """One virtiofsd per share, inside the VM's cgroup, listening before QEMU starts; their messages
    go to ``log``."""
    if not mounts.shares:
        return
    if not VIRTIOFSD.is_file():
        raise HostError(
            f"{VIRTIOFSD} is missing (package qemu-system-common): needed to share volumes with VMs",
            op="start VM",
            id=workload,
        )
    env = dict(os.environ, ISOBOX_CGROUP_PROCS=" ".join(str(p) for p in cgroup.procs_files), ISOBOX_LOG=str(log))
    for share in mounts.shares:
        if not Path(share.source).is_dir():
            raise WorkloadError(
                f"volume source {share.source} is not a directory", op="start VM", id=workload, path=share.source
            )
        sock = socket_path(sockets, share)
        sock.unlink(missing_ok=True)
        argv = [
            str(VIRTIOFSD),
            f"--socket-path={sock}",
            "-o",
            f"source={share.source}",
            "-o",
            "cache=auto",
            "-o",
            "sandbox=namespace",
        ]
        result = subprocess.run(
            ["/bin/sh", "-c", _JOIN_AND_SPAWN, "isobox-virtiofsd", *argv],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout_s,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
            raise WorkloadError(f"virtiofsd failed for {share.source}: {detail}", op="start VM", id=workload)
        deadline = time.monotonic() + timeout_s
        while not sock.exists():
            if time.monotonic() > deadline:
                raise WorkloadError(
                    f"virtiofsd did not listen on {sock} within {timeout_s:.0f} s", op="start VM", id=workload
                )
            time.sleep(0.005)
