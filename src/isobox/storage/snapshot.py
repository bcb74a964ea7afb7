"""Layers → an overlayfs mount, returned as data (as containerd snapshotters do) and performed by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from isobox.errors import InvalidArgumentError


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    fstype: str
    options: str


def overlay_mount(layers: tuple[str, ...], workload_dir: Path) -> Mount:
    """The writable root of one workload: the image's layers (lowest first) under a private upper dir."""
    if not layers:
        raise InvalidArgumentError("image has no layers", op="prepare rootfs", path=str(workload_dir))
    lower = ":".join(reversed(layers))  # overlayfs lists the top-most lower dir first
    options = f"lowerdir={lower},upperdir={workload_dir / 'upper'},workdir={workload_dir / 'work'}"
    if len(options) >= 4096:
        raise InvalidArgumentError(
            f"image has too many layers ({len(layers)}) for one overlay mount option page",
            op="prepare rootfs",
            path=str(workload_dir),
        )
    return Mount(source="overlay", target=str(workload_dir / "rootfs"), fstype="overlay", options=options)
