"""Named volumes: a directory per volume under <lib>/volumes/<name>/_data, recorded in SQLite.

A volume outlives the workloads that use it; a volume still used by a workload cannot be removed.
"""

from __future__ import annotations

import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from isobox.config import Paths
from isobox.errors import ConflictError, NotFoundError
from isobox.model.mounts import validate_volume_name
from isobox.state.db import Database


@dataclass(frozen=True)
class VolumeRecord:
    name: str
    path: str  # the data directory mounted into workloads
    anonymous: bool
    created_at: float


class VolumeStore:
    def __init__(self, paths: Paths, db: Database) -> None:
        self.root = paths.lib / "volumes"
        self.db = db

    def _record(self, name: str, anonymous: bool, created_at: float) -> VolumeRecord:
        return VolumeRecord(name, str(self.root / name / "_data"), anonymous, created_at)

    def create(self, name: str | None = None, *, anonymous: bool = False) -> tuple[VolumeRecord, bool]:
        """The volume ``name`` (created if missing); returns (record, created_now)."""
        chosen = validate_volume_name(name) if name else secrets.token_hex(32)
        with self.db.transaction() as tx:
            row = tx.execute("SELECT anonymous, created_at FROM volumes WHERE name = ?", (chosen,)).fetchone()
            if row is not None:
                return self._record(chosen, bool(row["anonymous"]), row["created_at"]), False
            now = time.time()
            (self.root / chosen / "_data").mkdir(parents=True, exist_ok=True, mode=0o755)
            tx.execute(
                "INSERT INTO volumes (name, anonymous, created_at) VALUES (?, ?, ?)", (chosen, int(anonymous), now)
            )
        return self._record(chosen, anonymous, now), True

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
        total = 0
        for path in Path(self.root / name / "_data").rglob("*"):
            try:
                if path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
            except OSError:
                continue
        return total
