"""Container snapshots: the writable layer (overlay upper dir) saved as a layer tarball and restored,
and, for a running container where CRIU works, its processes (checkpoint.py) in NAME.criu/.

The tarball is written by layerdiff (whiteouts as .wh. entries) and read back by the same hardened
unpacker as image layers: its content came from inside the container, so it is not trusted either.
The processes are dumped first and the layer right after, while they run on (as Podman's checkpoint
with --leave-running does): what they write in between is in the layer and not in their memory.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from isobox.drivers.container import bundle
from isobox.errors import ConflictError, NotFoundError
from isobox.images.unpack import unpack_layer
from isobox.linux.tree import discard_tree
from isobox.model.capability import Capability
from isobox.model.ids import validate_name
from isobox.model.record import WorkloadRecord
from isobox.model.snapshot import SnapshotContent, SnapshotInfo
from isobox.model.status import Status
from isobox.storage.layerdiff import write_layer

if TYPE_CHECKING:
    from isobox.drivers.container.driver import ContainerDriver


@dataclass(frozen=True)
class ContainerSnapshot:
    name: str
    path: str
    size_bytes: int
    created_at: float
    processes: bool = False  # the processes were checkpointed too


def images_dir(record: WorkloadRecord, name: str) -> Path:
    """Where the CRIU images of snapshot ``name`` are (absent for a files-only snapshot)."""
    return _dir(record) / f"{validate_name(name)}.criu"


def _dir(record: WorkloadRecord) -> Path:
    return Path(record.plan.workload_dir) / "snapshots"


def _path(record: WorkloadRecord, name: str) -> Path:
    return _dir(record) / f"{validate_name(name)}.tar.gz"


def create(
    record: WorkloadRecord, name: str, *, checkpoint: Callable[[Path], None] | None = None
) -> ContainerSnapshot:
    """Save the writable layer; with ``checkpoint`` (which dumps the processes into a directory) also
    the processes. A failure leaves no part of the snapshot."""
    target = _path(record, name)
    if target.exists():
        raise ConflictError(f"snapshot {name} of {record.name} already exists", op="snapshot create", id=record.name)
    target.parent.mkdir(exist_ok=True)
    images = images_dir(record, name)
    shutil.rmtree(images, ignore_errors=True)  # a leftover of a crash between the two parts
    partial = target.with_suffix(".partial")
    done = False
    try:
        if checkpoint is not None:
            checkpoint(images)
        with gzip.open(partial, "wb", compresslevel=1) as out:
            write_layer(Path(record.plan.workload_dir) / "upper", out)  # type: ignore[arg-type]
        os.replace(partial, target)
        done = True
    finally:
        partial.unlink(missing_ok=True)
        if not done:
            shutil.rmtree(images, ignore_errors=True)
    return _snapshot(target)


def _snapshot(path: Path) -> ContainerSnapshot:
    info = path.stat()
    name = path.name.removesuffix(".tar.gz")
    images = path.with_name(f"{name}.criu")
    size = info.st_size + sum(p.stat().st_size for p in images.rglob("*") if p.is_file())
    return ContainerSnapshot(name, str(path), size, info.st_mtime, images.is_dir())


def list_snapshots(record: WorkloadRecord) -> list[ContainerSnapshot]:
    if not _dir(record).is_dir():
        return []
    return [_snapshot(path) for path in sorted(_dir(record).glob("*.tar.gz"))]


def find(record: WorkloadRecord, name: str) -> ContainerSnapshot:
    path = _path(record, name)
    if not path.exists():
        raise NotFoundError(f"no snapshot {name} of {record.name}", op="snapshot restore", id=record.name)
    return _snapshot(path)


def restore(record: WorkloadRecord, name: str) -> None:
    """Replace the writable layer with the snapshot's; the container must not be running."""
    source = _path(record, name)
    if not source.exists():
        raise NotFoundError(f"no snapshot {name} of {record.name}", op="snapshot restore", id=record.name)
    workdir = Path(record.plan.workload_dir)
    fresh = workdir / f"upper.restore-{time.monotonic_ns()}"
    fresh.mkdir(mode=0o755)
    try:
        unpack_layer(source, fresh, what=f"snapshot {name}")
        if record.plan.userns_base is not None:
            os.chown(fresh, record.plan.userns_base, record.plan.userns_base)
        bundle.unmount_rootfs(record.plan)
        old = workdir / f"upper.old-{time.monotonic_ns()}"
        os.replace(workdir / "upper", old)
        os.replace(fresh, workdir / "upper")
        discard_tree(old)  # upper dirs hold whatever depth the container made
        discard_tree(workdir / "work")
        (workdir / "work").mkdir(mode=0o700)
    except BaseException:
        discard_tree(fresh)
        raise


def remove(record: WorkloadRecord, name: str) -> None:
    path = _path(record, name)
    if not path.exists():
        raise NotFoundError(f"no snapshot {name} of {record.name}", op="snapshot rm", id=record.name)
    path.unlink()
    shutil.rmtree(images_dir(record, name), ignore_errors=True)


# ---- the driver's snapshot operations (ContainerDriver delegates here) --------------------------------


def info(snapshot: ContainerSnapshot, note: str = "") -> SnapshotInfo:
    content = SnapshotContent.FILES_AND_PROCESSES if snapshot.processes else SnapshotContent.FILES
    return SnapshotInfo(snapshot.name, content, snapshot.created_at, snapshot.size_bytes, note)


def take(driver: ContainerDriver, record: WorkloadRecord, name: str) -> SnapshotInfo:
    """The writable layer, and the processes too while the container runs and CRIU can restore them."""
    note = ""
    checkpoint = None
    if driver.observe(record).status is Status.RUNNING:
        reason = driver.missing_capabilities(record).get(Capability.PROCESS_SNAPSHOT)
        if reason is None:
            checkpoint = partial(driver.checkpoint, record)
        else:
            note = f"process state not saved: {reason}"
    return info(create(record, name, checkpoint=checkpoint), note)


def go_back(
    driver: ContainerDriver, record: WorkloadRecord, name: str, during_create: Callable[[], None] | None
) -> int | None:
    """Swap the writable layer for the snapshot's. With its processes, they continue where they were (the
    running ones are replaced at once); a files-only snapshot of a running container restarts it."""
    snapshot = find(record, name)
    was_running = driver.observe(record).status in (Status.RUNNING, Status.PAUSED)
    if was_running:
        driver.stop(record, 0 if snapshot.processes else record.plan.stop_timeout_s)
    restore(record, name)
    if snapshot.processes:
        if during_create is not None:
            during_create()
        return driver.restore_checkpoint(record, images_dir(record, name))
    if was_running:
        return driver.start(record, during_create=during_create)
    return None
