"""Named volumes under <lib>/volumes/<name>/, recorded in SQLite. Two kinds:

- ``dir`` (the default): the directory _data. Containers bind-mount it and VMs get it over virtiofs,
  so one volume is shared live by both kinds of workload.
- ``disk``: a sparse raw image disk.ext4 holding an ext4 file system, attached to VMs as a
  virtio-blk disk (``volume create --opt type=disk[,size=…]``, and the anonymous volumes of VMs).
  The guest's own file system, for data only VMs use; it can be grown with ``volume resize``.

The kind is the layout on disk (disk.ext4 or _data), so records need no schema of their own.
A volume outlives the workloads that use it; a volume still used by a workload cannot be removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from pathlib import Path

from isobox.command import run
from isobox.config import Paths
from isobox.errors import ConflictError, InvalidArgumentError, NotFoundError
from isobox.model.mounts import validate_volume_name
from isobox.model.volume import DIR, DISK, VolumeRecord
from isobox.state.volumes import VolumeRepository, VolumeRow
from isobox.state.workloads import WorkloadRepository

DISK_FILE = "disk.ext4"
DEFAULT_DISK_BYTES = 10 * 1024**3  # sparse: only what the guest writes takes space
MIN_DISK_BYTES = 16 * 1024**2


def make_disk(image: Path, size_bytes: int) -> None:
    """A sparse file with an empty ext4 file system. Lazy inode-table and journal init: mkfs writes
    only metadata, and the guest mounts with noinit_itable (drivers/vm/guest/init.sh)."""
    with open(image, "wb") as handle:
        handle.truncate(size_bytes)
    command = [
        "mkfs.ext4", "-q", "-F", "-m", "0", "-L", "isobox-volume",
        "-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", str(image),
    ]  # fmt: skip
    run(command, op="create volume", path=str(image))


class VolumeStore:
    def __init__(self, paths: Paths, rows: VolumeRepository, workloads: WorkloadRepository) -> None:
        self.root = paths.lib / "volumes"
        self.rows = rows
        self.workloads = workloads

    def _record(self, row: VolumeRow) -> VolumeRecord:
        image = self.root / row.name / DISK_FILE
        try:
            size = image.stat().st_size
        except OSError:
            return VolumeRecord(row.name, str(self.root / row.name / "_data"), row.anonymous, row.created_at,
                                labels=row.labels, options=row.options)
        return VolumeRecord(row.name, str(image), row.anonymous, row.created_at, DISK, size, row.labels, row.options)

    def create(
        self,
        name: str | None = None,
        *,
        anonymous: bool = False,
        kind: str | None = None,
        size_bytes: int | None = None,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> tuple[VolumeRecord, bool]:
        """The volume ``name`` (created if missing, as a ``kind`` volume, dir by default); returns
        (record, created_now). An existing volume of another kind or size than asked is a conflict."""
        chosen = validate_volume_name(name) if name else secrets.token_hex(32)
        if kind not in (None, DIR, DISK):
            raise InvalidArgumentError(f"unknown volume type {kind!r} (dir, disk)", op="create volume", id=chosen)
        if size_bytes is not None and (kind != DISK or size_bytes < MIN_DISK_BYTES):
            raise InvalidArgumentError(
                "size= of a disk volume must be at least 16M" if kind == DISK else "size= needs type=disk",
                op="create volume",
                id=chosen,
            )
        directory = self.root / chosen

        def make() -> None:
            try:
                if kind == DISK:
                    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                    make_disk(directory / DISK_FILE, size_bytes or DEFAULT_DISK_BYTES)
                else:
                    (directory / "_data").mkdir(parents=True, exist_ok=True, mode=0o755)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise

        row = VolumeRow(chosen, anonymous, time.time(), tuple(sorted((labels or {}).items())),
                        tuple(sorted((options or {}).items())))
        existed = directory.exists()
        try:
            existing_row = self.rows.insert(row, make)
        except BaseException:
            if not existed:  # made here, but not recorded (a full disk): not left without a record
                shutil.rmtree(directory, ignore_errors=True)
            raise
        if existing_row is not None:
            existing = self._record(existing_row)
            if kind not in (None, existing.kind) or size_bytes not in (None, existing.size_bytes):
                raise ConflictError(
                    f"volume {chosen} already exists as a {existing.kind} volume", op="create volume", id=chosen
                )
            return existing, False
        return self._record(row), True

    def resize(self, name: str, size_bytes: int, running_users: list[str]) -> VolumeRecord:
        """Grow a disk volume's image and its ext4 file system (offline: no running workload uses it)."""
        record = self.get(name)
        if not record.is_disk:
            raise InvalidArgumentError(
                f"volume {name} is a directory volume: only disk volumes have a size", op="resize volume", id=name
            )
        if running_users:
            raise ConflictError(
                f"volume {name} is in use by running {', '.join(running_users)}: stop them first",
                op="resize volume",
                id=name,
            )
        if size_bytes < record.size_bytes:
            raise InvalidArgumentError(
                f"volume {name} has {record.size_bytes} bytes: shrinking is not supported", op="resize volume", id=name
            )
        image = Path(record.path)
        # resize2fs refuses to grow a file system that was not checked since it was last mounted;
        # e2fsck -p exits 1 when it fixed something harmless.
        run(["e2fsck", "-f", "-p", str(image)], op="resize volume", path=str(image), ok=(0, 1))
        os.truncate(image, size_bytes)
        try:
            run(["resize2fs", str(image)], op="resize volume", path=str(image))
        except BaseException:
            os.truncate(image, record.size_bytes)
            raise
        return self.get(name)

    def get(self, name: str) -> VolumeRecord:
        row = self.rows.get(name)
        if row is None:
            raise NotFoundError(f"no such volume: {name}", op="find volume", id=name)
        return self._record(row)

    def all(self) -> list[VolumeRecord]:
        return [self._record(row) for row in self.rows.all()]

    def users(self, name: str, *, running_only: bool = False) -> list[str]:
        """Names of workloads whose plan mounts this volume."""
        return self.workloads.names_using_volume(name, running_only=running_only)

    def remove(self, name: str, *, force: bool = False) -> None:
        self.get(name)
        users = self.users(name)
        if users and not force:
            raise ConflictError(f"volume {name} is in use by {', '.join(users)}", op="remove volume", id=name)
        # The files first: on a full disk the removal frees space before it records itself.
        shutil.rmtree(self.root / name, ignore_errors=True)
        self.rows.delete(name)

    def remove_unrecorded(self) -> list[str]:
        """Directories of volumes whose create was killed after it made them and before it recorded them."""
        names = [p.name for p in self.root.iterdir() if not p.name.startswith(".")] if self.root.is_dir() else []
        if not names:
            return []
        return self.rows.remove_unrecorded(names, lambda name: shutil.rmtree(self.root / name, ignore_errors=True))

    def prune(self) -> list[str]:
        self.remove_unrecorded()
        removed: list[str] = []
        for volume in self.all():
            if not self.users(volume.name):
                self.remove(volume.name)
                removed.append(volume.name)
        return removed

    def size_bytes(self, name: str) -> int:
        """Space the volume takes on the host (a disk volume's allocated blocks, not its capacity)."""
        image = self.root / name / DISK_FILE
        with contextlib.suppress(OSError):
            return image.stat().st_blocks * 512
        total = 0
        for path in Path(self.root / name / "_data").rglob("*"):
            try:
                if path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
            except OSError:
                continue
        return total
