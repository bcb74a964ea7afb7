"""The volume records: every SQL statement about volumes. Which workloads use a volume is the workload
repository's question (its workload_volumes table).

Each row is also copied to ``records/volumes/<name>.json`` (state/mirror.py), so `isobox system check` can
give a rebuilt volume its labels, options and anonymity back."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isobox.state.db import Database
from isobox.state.mirror import JsonMirror


@dataclass(frozen=True)
class VolumeRow:
    name: str
    anonymous: bool
    created_at: float
    labels: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, str], ...] = ()


class VolumeRepository:
    def __init__(self, db: Database, records_dir: Path | None = None) -> None:
        self.db = db
        self.mirror = JsonMirror(records_dir if records_dir is not None else db.path.parent / "records" / "volumes")

    def get(self, name: str) -> VolumeRow | None:
        rows = self.db.query("SELECT * FROM volumes WHERE name = ?", (name,))
        return _row(rows[0]) if rows else None

    def all(self) -> list[VolumeRow]:
        return [_row(r) for r in self.db.query("SELECT * FROM volumes ORDER BY name")]

    def insert(self, row: VolumeRow, make: Callable[[], None]) -> VolumeRow | None:
        """Record a new volume, running ``make`` (which creates it on disk) inside the same transaction, so
        two creates of one name make it once. Returns None if it was created now, else the existing row."""

        def insert(tx: sqlite3.Connection) -> VolumeRow | None:
            existing = tx.execute("SELECT * FROM volumes WHERE name = ?", (row.name,)).fetchone()
            if existing is not None:
                return _row(existing)
            make()
            _insert(tx, row)
            return None

        existing = self.db.write(insert)
        if existing is None:
            self.mirror.write(row.name, row)
        return existing

    def restore(self, row: VolumeRow) -> bool:
        """`isobox system check`: record a volume found on disk; False if one of that name is recorded."""

        def insert(tx: sqlite3.Connection) -> bool:
            if tx.execute("SELECT 1 FROM volumes WHERE name = ?", (row.name,)).fetchone() is not None:
                return False
            _insert(tx, row)
            return True

        restored = self.db.write(insert)
        if restored:
            self.mirror.write(row.name, row)
        return restored

    def delete(self, name: str) -> None:
        self.db.write(lambda tx: tx.execute("DELETE FROM volumes WHERE name = ?", (name,)), frees=True)
        self.mirror.remove(name)

    def remove_unrecorded(self, names: list[str], remove: Callable[[str], None]) -> list[str]:
        """Run ``remove`` for each of ``names`` that has no record, holding the write lock: a create, which
        makes its directory inside its own write transaction, is then never half-way (see storage/volumes)."""

        def change(tx: sqlite3.Connection) -> list[str]:
            recorded = {str(row[0]) for row in tx.execute("SELECT name FROM volumes")}
            gone = [name for name in names if name not in recorded]
            for name in gone:
                remove(name)
            return gone

        return self.db.write(change, frees=True)

    def mirrored(self) -> dict[str, VolumeRow]:
        """The rows' JSON copies by name (for `isobox system check`)."""
        return {row.name: row for row in self.mirror.load_all(VolumeRow)}


def _insert(tx: sqlite3.Connection, row: VolumeRow) -> None:
    tx.execute(
        "INSERT INTO volumes (name, anonymous, created_at, labels, options) VALUES (?, ?, ?, ?, ?)",
        (row.name, int(row.anonymous), row.created_at, json.dumps(dict(row.labels)), json.dumps(dict(row.options))),
    )


def _row(row: sqlite3.Row) -> VolumeRow:
    labels = json.loads(row["labels"] or "{}")
    options = json.loads(row["options"] or "{}")
    return VolumeRow(row["name"], bool(row["anonymous"]), row["created_at"], tuple(sorted(labels.items())),
                     tuple(sorted(options.items())))
