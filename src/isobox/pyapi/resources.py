"""The image, network, volume, snapshot, VM and system functions of the Python API (see isobox/__init__.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Unpack

from isobox.images.store import ImageRecord
from isobox.model.network import NetworkRecord
from isobox.model.record import WorkloadRecord
from isobox.model.snapshot import SnapshotInfo
from isobox.model.volume import VolumeRecord
from isobox.pyapi._context import Root, context
from isobox.pyapi.options import RunKwargs
from isobox.pyapi.workloads import spec

# ---- images -------------------------------------------------------------------------------------


def pull(reference: str, *, platform: str | None = None, insecure: bool = False, root: Root = None) -> ImageRecord:
    """Pull an image (Docker's naming: busybox → docker.io/library/busybox:latest)."""
    from isobox.service import images

    with context(root) as ctx:
        return images.pull(ctx, reference, platform=platform, insecure=insecure)


def push(source: str, target: str | None = None, *, insecure: bool = False, root: Root = None) -> str:
    """Push an image to a registry; returns the manifest digest."""
    from isobox.service import images

    with context(root) as ctx:
        return images.push(ctx, source, target, insecure=insecure)


def login(registry: str, username: str, password: str, *, insecure: bool = False, root: Root = None) -> None:
    """Check credentials against a registry and store them for later pulls and pushes."""
    from isobox.service import images

    with context(root) as ctx:
        images.login(ctx, registry, username, password, insecure=insecure)


def logout(registry: str, *, root: Root = None) -> bool:
    """Forget the stored credentials of a registry; whether there were any."""
    from isobox.service import images

    with context(root) as ctx:
        return images.logout(ctx, registry)


def list_images(*, root: Root = None) -> list[tuple[ImageRecord, list[str]]]:
    """Every image of the store with its names, newest first."""
    with context(root) as ctx:
        return ctx.images.list()


def remove_image(reference: str, *, force: bool = False, root: Root = None) -> list[str]:
    """Untag a name, or delete an image by id; what was untagged and deleted."""
    from isobox.service import images

    with context(root) as ctx:
        return images.remove(ctx, reference, force=force)


def tag(source: str, target: str, *, root: Root = None) -> None:
    """Give an image another name."""
    from isobox.service import images

    with context(root) as ctx:
        images.tag(ctx, source, target)


def save(names: Sequence[str], output: str | os.PathLike[str], *, fmt: str = "docker", root: Root = None) -> None:
    """Write images to a tar: ``docker`` (docker load reads it) or ``oci`` (an OCI image layout)."""
    from isobox.service import images

    with context(root) as ctx:
        images.save(ctx, list(names), output, fmt=fmt)


def load(source: str | os.PathLike[str], *, root: Root = None) -> list[ImageRecord]:
    """Load every image of a docker-archive or OCI-layout tar."""
    from isobox.service import images

    with context(root) as ctx:
        return images.load(ctx, source)


def scan(image: str, *, root: Root = None) -> Any:
    """The image's risk report (root user, setuid files, world-writable paths, secrets, packages)."""
    from isobox.service import policy

    with context(root) as ctx:
        return policy.scan_image(ctx, policy.image_record(ctx, image), image)


# ---- networks -----------------------------------------------------------------------------------


def network_create(
    name: str, *, subnet: str | None = None, gateway: str | None = None, root: Root = None
) -> NetworkRecord:
    """A user-defined network (a bridge with its own subnet, DNS and NAT)."""
    from isobox.service import networks

    with context(root) as ctx:
        return networks.create(ctx, name, subnet=subnet, gateway=gateway)


def list_networks(*, root: Root = None) -> list[NetworkRecord]:
    """Every network, the default one included once it exists."""
    from isobox.service import networks

    with context(root) as ctx:
        return networks.list_networks(ctx)


def network_inspect(name: str, *, root: Root = None) -> dict[str, object]:
    """A network with its endpoints (the workloads on it, their addresses and ports)."""
    from isobox.service import networks

    with context(root) as ctx:
        return networks.inspect(ctx, name)


def network_remove(name: str, *, root: Root = None) -> NetworkRecord:
    """Remove a network no workload is on."""
    from isobox.service import networks

    with context(root) as ctx:
        return networks.remove(ctx, name)


def network_prune(*, root: Root = None) -> list[NetworkRecord]:
    """Remove every network no workload is on."""
    from isobox.service import networks

    with context(root) as ctx:
        return networks.prune(ctx)


# ---- volumes ------------------------------------------------------------------------------------


def volume_create(
    name: str | None = None,
    *,
    options: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    root: Root = None,
) -> VolumeRecord:
    """A named volume: a directory shared by containers and VMs, or with ``options=["type=disk", "size=2g"]``
    an ext4 disk volume for VMs."""
    from isobox.service import volumes

    with context(root) as ctx:
        return volumes.create(ctx, name, tuple(options), labels=dict(labels or {}))


def list_volumes(*, root: Root = None) -> list[VolumeRecord]:
    """Every volume, named and anonymous."""
    from isobox.service import volumes

    with context(root) as ctx:
        return volumes.list_volumes(ctx)


def volume_remove(name: str, *, force: bool = False, root: Root = None) -> None:
    """Remove a volume (``force``: even while a workload uses it)."""
    from isobox.service import volumes

    with context(root) as ctx:
        volumes.remove(ctx, name, force=force)


def volume_resize(name: str, size: str, *, root: Root = None) -> VolumeRecord:
    """Grow a disk volume (no running workload may use it)."""
    from isobox.service import volumes

    with context(root) as ctx:
        return volumes.resize(ctx, name, size)


def volume_prune(*, root: Root = None) -> list[str]:
    """Remove every volume no workload uses; their names."""
    from isobox.service import volumes

    with context(root) as ctx:
        return volumes.prune(ctx)


# ---- snapshots and VMs --------------------------------------------------------------------------


def snapshot_create(name: str, snapshot: str, *, root: Root = None) -> SnapshotInfo:
    """A VM's disk (and memory while it runs); a container's writable layer (and its processes while it
    runs, where CRIU works)."""
    from isobox.service import snapshots

    with context(root) as ctx:
        return snapshots.create(ctx, name, snapshot)


def list_snapshots(name: str, *, root: Root = None) -> list[SnapshotInfo]:
    """The snapshots of a workload."""
    from isobox.service import snapshots

    with context(root) as ctx:
        return snapshots.list_snapshots(ctx, name)


def snapshot_restore(name: str, snapshot: str, *, root: Root = None) -> WorkloadRecord:
    """Go back to a snapshot (one with processes or memory resumes where it was)."""
    from isobox.service import snapshots

    with context(root) as ctx:
        return snapshots.restore(ctx, name, snapshot)


def snapshot_remove(name: str, snapshot: str, *, root: Root = None) -> None:
    """Remove a snapshot."""
    from isobox.service import snapshots

    with context(root) as ctx:
        snapshots.remove(ctx, name, snapshot)


def snapshot_clone(name: str, snapshot: str, *, new_name: str | None = None, root: Root = None) -> WorkloadRecord:
    """A new, running VM from a snapshot of another."""
    from isobox.service import snapshots

    with context(root) as ctx:
        return snapshots.clone(ctx, name, snapshot, new_name)


def vm_create(
    disk: str | os.PathLike[str],
    *,
    name: str | None = None,
    cdrom: str | os.PathLike[str] | None = None,
    cloud_init: str | os.PathLike[str] | None = None,
    memory: int | str | None = None,
    cpus: float | None = None,
    firmware: str = "bios",
    start: bool = False,
    root: Root = None,
) -> WorkloadRecord:
    """A VM that boots a disk image (qcow2 or raw, never written) through firmware (bios or uefi)."""
    from isobox.model.spec import parse_size
    from isobox.service import vms

    memory_bytes = parse_size(memory, what="memory") if isinstance(memory, str) else memory
    with context(root) as ctx:
        return vms.create_disk_vm(
            ctx,
            Path(disk),
            cdrom=Path(cdrom) if cdrom is not None else None,
            cloud_init=Path(cloud_init) if cloud_init is not None else None,
            name=name,
            memory_bytes=memory_bytes,
            cpus=cpus,
            start=start,
            firmware=firmware,
        )


def console(name: str, *, stdin: int = 0, stdout: int = 1, root: Root = None) -> None:
    """Bridge the fds to the serial console of a disk-image VM until Ctrl-] (or the VM ends)."""
    from isobox.model.streams import Attach
    from isobox.service import control

    with context(root) as ctx:
        control.console(ctx, name, Attach(stdin=stdin, stdout=stdout, stderr=stdout))


# ---- isolation and the system -------------------------------------------------------------------


def compare(
    image: str,
    command: str | Sequence[str] | None = None,
    *,
    runs: int = 3,
    warmup: int = 1,
    root: Root = None,
    **options: Unpack[RunKwargs],
) -> Any:
    """Run the workload as a container and as a VM and measure both (see `isobox compare`)."""
    from isobox.service import compare as compare_service

    wanted = spec(image, command, **options)
    with context(root) as ctx:
        return compare_service.compare(ctx, wanted, runs=runs, warmup=warmup)


def explain(
    image: str, command: str | Sequence[str] | None = None, *, root: Root = None, **options: Unpack[RunKwargs]
) -> Any:
    """Which isolation-policy rule decides for this workload, and why."""
    from isobox.service import policy

    wanted = spec(image, command, **options)
    with context(root) as ctx:
        return policy.explain(ctx, wanted)


def system_df(*, root: Root = None) -> Any:
    """What isobox's state costs on disk, by kind."""
    from isobox.service import system

    with context(root) as ctx:
        return system.disk_usage(ctx)


def system_prune(*, all_images: bool = False, volumes: bool = False, root: Root = None) -> Any:
    """Remove exited workloads, unused networks and images (``all_images``: tagged ones too), and with
    ``volumes`` unused volumes; then unreferenced layers and blobs."""
    from isobox.service import system

    with context(root) as ctx:
        return system.prune(ctx, all_images=all_images, include_volumes=volumes)
