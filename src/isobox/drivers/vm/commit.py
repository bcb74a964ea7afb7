"""A stopped image VM's changes as a layer, for `isobox commit`, and its whole file system for `isobox export`.

A VM's root disk has no upper directory: its qcow2 overlay is flattened to a raw copy, the copy is checked
and repaired by e2fsck in user space (the guest wrote that file system, so the host kernel only mounts it
once it is known to be sound), mounted read-only (noload: no journal replay) next to the image's own base
disk, and the two trees are compared (storage/layerdiff.write_diff).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from isobox.command import run
from isobox.drivers.vm import qemu_args, rootdisk
from isobox.errors import InvalidStateError
from isobox.linux.mount import mount_image_readonly, umount
from isobox.model.record import WorkloadRecord
from isobox.storage.layerdiff import write_diff
from isobox.storage.layerdiff import write_layer as write_layer_of_tree

if TYPE_CHECKING:
    from isobox.drivers.vm.driver import VMDriver

# The root disk's own file system directory (mkfs.ext4), not image content.
VM_INIT_PATHS = frozenset({"/lost+found"})


def write_layer(driver: VMDriver, record: WorkloadRecord, out: BinaryIO, skip: frozenset[str]) -> None:
    with _mounted_disks(driver, record, "commit") as (base, new):
        write_diff(base, new, out, skip=skip | VM_INIT_PATHS)


def write_filesystem(driver: VMDriver, record: WorkloadRecord, out: BinaryIO) -> None:
    """The stopped VM's whole root file system as a tar (`isobox export`), read as for commit."""
    with _mounted_disks(driver, record, "export") as (_, new):
        write_layer_of_tree(new, out, skip=VM_INIT_PATHS)


@contextlib.contextmanager
def _mounted_disks(driver: VMDriver, record: WorkloadRecord, op: str) -> Iterator[tuple[Path, Path]]:
    """(the image's base disk, a checked copy of the VM's disk), both mounted read-only."""
    if driver.running(record):
        raise InvalidStateError(
            "stop the VM first: its disk is only consistent once the guest has shut down", op=op, id=record.name
        )
    paths = driver.paths
    disk = qemu_args.VMFiles.of(record.plan.workload_dir, record.id, paths.run).disk
    base = rootdisk.ensure_base(paths.cache, paths.locks, record.plan.image_id, record.plan.layers)
    paths.tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.tmp, prefix=f"{op}-") as scratch:
        flat = Path(scratch) / "disk.raw"
        run(
            ["qemu-img", "convert", "-U", "-O", "raw", str(disk), str(flat)],
            op=f"{op} VM disk",
            path=str(disk),
            timeout_s=3600,
        )
        # -y on the private copy: repairs what an unclean stop left (exit 1: corrected), refuses worse.
        run(["e2fsck", "-f", "-y", str(flat)], op=f"{op} VM disk", path=str(disk), ok=(0, 1), timeout_s=3600)
        mounts = [(flat, Path(scratch) / "new"), (base, Path(scratch) / "base")]
        mounted: list[Path] = []
        try:
            for image, point in mounts:
                point.mkdir()
                mount_image_readonly(str(image), str(point))
                mounted.append(point)
            yield Path(scratch) / "base", Path(scratch) / "new"
        finally:
            for point in reversed(mounted):
                umount(str(point))
