"""Container snapshots: the writable layer (overlay upper dir) saved as a layer tarball and restored.

The tarball is written by layerdiff (whiteouts as .wh. entries) and read back by the same hardened
unpacker as image layers: its content came from inside the container, so it is not trusted either.
Process state is not saved (CRIU is not part of isobox yet); a running container is restored by
stopping it, swapping its writable layer, and starting it again.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from isobox.drivers.container import bundle
from isobox.errors import ConflictError, InvalidArgumentError, NotFoundError
from isobox.images.layerdiff import write_layer
from isobox.images.unpack import unpack_layer
from isobox.model.ids import validate_name
from isobox.model.record import WorkloadRecord


@dataclass(frozen=True)
class ContainerSnapshot:
    name: str
    path: str
    size_bytes: int
    created_at: float


def _dir(record: WorkloadRecord) -> Path:
    return Path(record.plan.workload_dir) / "snapshots"


def _path(record: WorkloadRecord, name: str) -> Path:
    return _dir(record) / f"{validate_name(name)}.tar.gz"


def create(record: WorkloadRecord, name: str) -> ContainerSnapshot:
    target = _path(record, name)
    if target.exists():
        raise ConflictError(f"snapshot {name} of {record.name} already exists", op="snapshot create", id=record.name)
    target.parent.mkdir(exist_ok=True)
    partial = target.with_suffix(".partial")
    try:
        with gzip.open(partial, "wb", compresslevel=1) as out:
            write_layer(Path(record.plan.workload_dir) / "upper", out)  # type: ignore[arg-type]
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    info = target.stat()
    return ContainerSnapshot(name, str(target), info.st_size, info.st_mtime)


def list_snapshots(record: WorkloadRecord) -> list[ContainerSnapshot]:
    if not _dir(record).is_dir():
        return []
    found = []
    for path in sorted(_dir(record).glob("*.tar.gz")):
        info = path.stat()
        found.append(ContainerSnapshot(path.name.removesuffix(".tar.gz"), str(path), info.st_size, info.st_mtime))
    return found


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
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(workdir / "work", ignore_errors=True)
        (workdir / "work").mkdir(mode=0o700)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise


def remove(record: WorkloadRecord, name: str) -> None:
    path = _path(record, name)
    if not path.exists():
        raise InvalidArgumentError(f"no snapshot {name} of {record.name}", op="snapshot rm", id=record.name)
    path.unlink()
