"""The volume records: every SQL statement about volumes. Which workloads use a volume is the workload
repository's question (its workload_volumes table)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from isobox.state.db import Database


@dataclass(frozen=True)
class VolumeRow:
    name: str
    anonymous: bool
    created_at: float
    labels: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, str], ...] = ()


class VolumeRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

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
            tx.execute(
                "INSERT INTO volumes (name, anonymous, created_at, labels, options) VALUES (?, ?, ?, ?, ?)",
                (row.name, int(row.anonymous), row.created_at, json.dumps(dict(row.labels)),
                 json.dumps(dict(row.options))),
            )
            return None

        return self.db.write(insert)

    def delete(self, name: str) -> None:
        self.db.write(lambda tx: tx.execute("DELETE FROM volumes WHERE name = ?", (name,)))


def _row(row: sqlite3.Row) -> VolumeRow:
    labels = json.loads(row["labels"] or "{}")
    options = json.loads(row["options"] or "{}")
    return VolumeRow(row["name"], bool(row["anonymous"]), row["created_at"], tuple(sorted(labels.items())),
                     tuple(sorted(options.items())))
