"""`isobox system df` and `system prune`: what isobox's state costs on disk, and getting it back."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from isobox.model.record import WorkloadRecord
from isobox.model.status import Status
from isobox.service import networks, volumes, workloads
from isobox.service.context import Context


@dataclass(frozen=True)
class DiskUsage:
    kind: str
    count: int
    size_bytes: int


def du(path: Path) -> int:
    """Allocated bytes of ``path``, a file (a disk volume's image) or a tree (hard links counted once),
    without following symlinks."""
    with contextlib.suppress(OSError):
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            return info.st_blocks * 512
    seen: set[tuple[int, int]] = set()
    total = 0
    for current, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            try:
                info = os.lstat(os.path.join(current, name))
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += info.st_blocks * 512
    return total


# A container's directory also holds mount points (its rootfs, idmapped layers and volumes): their
# content is the image's and the volumes', not the workload's own.
_MOUNTED = frozenset({"rootfs", "lower", "volumes"})


def workload_size(ctx: Context, record: WorkloadRecord) -> int:
    """The bytes a workload adds on disk: a container's writable layer, a VM's overlay disk, their logs."""
    directory = Path(record.plan.workload_dir)
    try:
        entries = list(directory.iterdir())
    except OSError:
        return 0
    return sum(du(entry) for entry in entries if entry.name not in _MOUNTED)


def disk_usage(ctx: Context) -> list[DiskUsage]:
    records = ctx.images.list()
    layers = [p for p in ctx.paths.layers.iterdir() if not p.name.startswith(".")] if ctx.paths.layers.is_dir() else []
    all_workloads = workloads.list_workloads(ctx, all=True)
    vols = volumes.list_volumes(ctx)
    return [
        DiskUsage("images (blobs)", len(records), du(ctx.paths.blobs)),
        DiskUsage("layers (unpacked)", len(layers), sum(du(p) for p in layers)),
        DiskUsage("workloads (writable layers, VM disks, logs)", len(all_workloads), du(ctx.paths.workloads)),
        DiskUsage("volumes", len(vols), sum(du(Path(v.path)) for v in vols)),
        DiskUsage("cache (VM root disks, initramfs)", 0, du(ctx.paths.cache) if ctx.paths.cache.is_dir() else 0),
        _build_cache(ctx),
    ]


def _build_cache(ctx: Context) -> DiskUsage:
    """`isobox build`'s cache: its entries, and the layers only it keeps plus its cache mounts."""
    from isobox.service import build

    report = build.usage(ctx)
    return DiskUsage("build cache (layers only it keeps, cache mounts)", report.entries, report.size_bytes)


@dataclass(frozen=True)
class UsageSummary:
    """One row of `system df`, as Docker's: how many, how many in use, their size, what a prune would free."""

    kind: str  # Images, Containers, Local Volumes, Cache
    total: int
    active: int
    size_bytes: int
    reclaimable_bytes: int


def usage_summary(ctx: Context) -> list[UsageSummary]:
    """Images (their stored size; unused ones reclaimable), workloads (their own files; stopped ones
    reclaimable), volumes (unused ones reclaimable), and the VM cache (root disks rebuilt on demand, kept)."""
    all_workloads = workloads.list_workloads(ctx, all=True)
    used_images = ctx.records.workloads.image_ids()
    images = ctx.images.list()
    image_size = sum(record.size for record, _ in images)
    unused_images = sum(record.size for record, _ in images if record.id not in used_images)
    sizes = {record.id: workload_size(ctx, record) for record in all_workloads}
    running = [r for r in all_workloads if r.status in (Status.RUNNING, Status.PAUSED)]
    store = volumes.store(ctx)
    vols = volumes.list_volumes(ctx)
    volume_sizes = {v.name: du(Path(v.path)) for v in vols}
    in_use = [v for v in vols if store.users(v.name)]
    cache = du(ctx.paths.cache) if ctx.paths.cache.is_dir() else 0
    cache_entries = len(list(ctx.paths.cache.iterdir())) if ctx.paths.cache.is_dir() else 0
    return [
        UsageSummary("Images", len(images), len(used_images & {r.id for r, _ in images}), image_size, unused_images),
        UsageSummary("Containers", len(all_workloads), len(running), sum(sizes.values()),
                     sum(sizes[r.id] for r in all_workloads if r not in running)),
        UsageSummary("Local Volumes", len(vols), len(in_use), sum(volume_sizes.values()),
                     sum(volume_sizes[v.name] for v in vols if v not in in_use)),
        UsageSummary("Cache", cache_entries, 0, cache, 0),
        _build_cache_summary(ctx),
    ]


def _build_cache_summary(ctx: Context) -> UsageSummary:
    """Docker's "Build Cache" row: `isobox build`'s cache entries, all of them reclaimable (builder prune)."""
    from isobox.service import build

    report = build.usage(ctx)
    return UsageSummary("Build Cache", report.entries, 0, report.size_bytes, report.size_bytes)


@dataclass(frozen=True)
class PruneReport:
    workloads: tuple[str, ...]
    networks: tuple[str, ...]
    volumes: tuple[str, ...]
    images: tuple[str, ...]
    layers_removed: int
    blobs_removed: int


def prune(ctx: Context, *, all_images: bool = False, include_volumes: bool = False) -> PruneReport:
    """Remove exited workloads (and what killed builds left), networks no workload is on (as Docker's), images
    no workload uses (untagged ones, or all with all_images), the build cache unless a build is running,
    then gc."""
    from isobox.service import build

    removed_workloads = build.sweep(ctx, everything=True)
    for record in workloads.list_workloads(ctx, all=True):
        if record.status in (Status.EXITED, Status.CREATED) or workloads.stale_creating(ctx, record):
            workloads.remove(ctx, record.id, force=True, volumes=True)
            removed_workloads.append(record.name)
    removed_networks = [n.name for n in networks.prune(ctx)]
    removed_volumes = volumes.prune(ctx) if include_volumes else []
    used = ctx.records.workloads.image_ids()
    removed_images = []
    for image, names in ctx.images.list():
        if image.id in used or (names and not all_images):
            continue
        ctx.images.remove(image.id, force=True)
        removed_images.append(image.id)
    build.prune(ctx, wait=False)
    layers, blobs = ctx.images.gc()
    return PruneReport(
        tuple(removed_workloads), tuple(removed_networks), tuple(removed_volumes), tuple(removed_images), layers, blobs
    )
