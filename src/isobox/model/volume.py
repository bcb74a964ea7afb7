"""A volume as isobox keeps it (storage/volumes.py makes and removes them)."""

from __future__ import annotations

from dataclasses import dataclass

DIR = "dir"  # a directory: containers bind-mount it, VMs get it over virtiofs
DISK = "disk"  # an ext4 disk image: VMs only, over virtio-blk


@dataclass(frozen=True)
class VolumeRecord:
    name: str
    path: str  # the data directory (dir) or the disk image (disk) that workloads mount
    anonymous: bool
    created_at: float
    kind: str = DIR
    size_bytes: int = 0  # a disk volume's capacity
    labels: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, str], ...] = ()  # the driver options given at create (Docker's DriverOpts)

    @property
    def is_disk(self) -> bool:
        return self.kind == DISK
