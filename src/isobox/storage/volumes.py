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
from dataclasses import dataclass
from pathlib import Path

from isobox.command import run
from isobox.config import Paths
from isobox.errors import ConflictError, InvalidArgumentError, NotFoundError
from isobox.model.mounts import validate_volume_name
from isobox.state.db import Database

DIR = "dir"
DISK = "disk"
DISK_FILE = "disk.ext4"
DEFAULT_DISK_BYTES = 10 * 1024**3  # sparse: only what the guest writes takes space
MIN_DISK_BYTES = 16 * 1024**2


@dataclass(frozen=True)
class VolumeRecord:
    name: str
    path: str  # the data directory (dir) or the disk image (disk) that workloads mount
    anonymous: bool
    created_at: float
    kind: str = DIR
    size_bytes: int = 0  # a disk volume's capacity

    @property
    def is_disk(self) -> bool:
        return self.kind == DISK


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
    def __init__(self, paths: Paths, db: Database) -> None:
        self.root = paths.lib / "volumes"
        self.db = db

    def _record(self, name: str, anonymous: bool, created_at: float) -> VolumeRecord:
        image = self.root / name / DISK_FILE
        try:
            size = image.stat().st_size
        except OSError:
            return VolumeRecord(name, str(self.root / name / "_data"), anonymous, created_at)
        return VolumeRecord(name, str(image), anonymous, created_at, DISK, size)

    def create(
        self,
        name: str | None = None,
        *,
        anonymous: bool = False,
        kind: str | None = None,
        size_bytes: int | None = None,
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
        with self.db.transaction() as tx:
            row = tx.execute("SELECT anonymous, created_at FROM volumes WHERE name = ?", (chosen,)).fetchone()
            if row is not None:
                existing = self._record(chosen, bool(row["anonymous"]), row["created_at"])
                if kind not in (None, existing.kind) or size_bytes not in (None, existing.size_bytes):
                    raise ConflictError(
                        f"volume {chosen} already exists as a {existing.kind} volume", op="create volume", id=chosen
                    )
                return existing, False
            now = time.time()
            directory = self.root / chosen
            try:
                if kind == DISK:
                    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                    make_disk(directory / DISK_FILE, size_bytes or DEFAULT_DISK_BYTES)
                else:
                    (directory / "_data").mkdir(parents=True, exist_ok=True, mode=0o755)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            tx.execute(
                "INSERT INTO volumes (name, anonymous, created_at) VALUES (?, ?, ?)", (chosen, int(anonymous), now)
            )
        return self._record(chosen, anonymous, now), True

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
        rows = self.db.query("SELECT anonymous, created_at FROM volumes WHERE name = ?", (name,))
        if not rows:
            raise NotFoundError(f"no such volume: {name}", op="find volume", id=name)
        return self._record(name, bool(rows[0]["anonymous"]), rows[0]["created_at"])

    def all(self) -> list[VolumeRecord]:
        rows = self.db.query("SELECT name, anonymous, created_at FROM volumes ORDER BY name")
        return [self._record(r["name"], bool(r["anonymous"]), r["created_at"]) for r in rows]

    def users(self, name: str) -> list[str]:
        """Names of workloads whose plan mounts this volume."""
        pattern = f'%"volume": "{name}"%'
        return [r["name"] for r in self.db.query("SELECT name FROM workloads WHERE record LIKE ?", (pattern,))]

    def remove(self, name: str, *, force: bool = False) -> None:
        self.get(name)
        users = self.users(name)
        if users and not force:
            raise ConflictError(f"volume {name} is in use by {', '.join(users)}", op="remove volume", id=name)
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM volumes WHERE name = ?", (name,))
        shutil.rmtree(self.root / name, ignore_errors=True)

    def prune(self) -> list[str]:
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
