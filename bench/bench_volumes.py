"""Volume benchmarks: what a VM's volume costs at boot and in I/O, per kind of volume.

1. ``vm_volume_boot``: ``isobox run --rm --vm --network none busybox true`` with no volume (the
   baseline), with a directory volume (virtiofs: a virtiofsd per share and shared guest memory) and
   with a disk volume (virtio-blk ext4).
2. ``vm_volume_io``: the same run with a workload that writes 64 MiB in 1 MiB blocks, syncs, reads
   it back and creates and lists 500 small files, on the VM's root disk (the baseline), on a directory
   volume (virtiofs) and on a disk volume; and, as the peer, a container doing the same on the same
   directory volume (a bind mount). Every case includes its start-up; subtract vm_volume_boot's
   figures to compare the I/O alone.

virtio-9p, the other daemonless way to share a directory, cannot be measured with isobox's guest
kernel: Debian's cloud flavour is built without it (CONFIG_NET_9P is not set).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from bench.harness import Case, Skipped, require, run_cases

ISOBOX = [sys.executable, "-m", "isobox.cli.main"]
VM = ["run", "--rm", "--vm", "--network", "none"]
IO = (
    "dd if=/dev/zero of={d}/big bs=1M count=64 2>/dev/null && sync && cat {d}/big > /dev/null && rm {d}/big && "
    "mkdir {d}/many && i=0; while [ $i -lt 500 ]; do echo $i > {d}/many/$i; i=$((i+1)); done; "
    "ls {d}/many | wc -l > /dev/null; rm -r {d}/many"
)


def _isobox(*args: str) -> None:
    subprocess.run([*ISOBOX, *args], check=True, capture_output=True)


def main(runs: int = 5) -> None:
    require("qemu-system-x86_64", "mkfs.ext4")
    if os.geteuid() != 0:
        raise Skipped("VM benchmarks need root")
    if not os.path.exists("/usr/lib/qemu/virtiofsd"):
        raise Skipped("virtiofsd (qemu-system-common) not installed")
    root = tempfile.mkdtemp(prefix="isobox-bench-volumes-", dir="/var/tmp")
    os.environ["ISOBOX_ROOT"] = root
    try:
        _isobox("system", "setup-builtin")
        _isobox("volume", "create", "shared")
        _isobox("volume", "create", "--opt", "type=disk", "--opt", "size=1g", "disk")
        boot = [
            Case("vm, no volume", [*ISOBOX, *VM, "busybox", "true"]),
            Case("vm, directory volume (virtiofs)", [*ISOBOX, *VM, "-v", "shared:/v", "busybox", "true"]),
            Case("vm, disk volume (virtio-blk)", [*ISOBOX, *VM, "-v", "disk:/v", "busybox", "true"]),
        ]
        run_cases("vm_volume_boot", boot, runs=runs, warmup=1, baseline="vm, no volume")
        io = [
            Case("vm, root disk", [*ISOBOX, *VM, "busybox", "sh", "-c", IO.format(d="/tmp")]),
            Case("vm, directory volume (virtiofs)",
                 [*ISOBOX, *VM, "-v", "shared:/v", "busybox", "sh", "-c", IO.format(d="/v")]),
            Case("vm, disk volume (virtio-blk)",
                 [*ISOBOX, *VM, "-v", "disk:/v", "busybox", "sh", "-c", IO.format(d="/v")]),
            Case("container, directory volume (bind mount)",
                 [*ISOBOX, "run", "--rm", "--network", "none", "-v", "shared:/v", "busybox", "sh", "-c",
                  IO.format(d="/v")]),
        ]  # fmt: skip
        run_cases("vm_volume_io", io, runs=runs, warmup=1, baseline="vm, root disk")
    finally:
        subprocess.run([*ISOBOX, "volume", "rm", "-f", "shared", "disk"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
