"""The workload records: every SQL statement about workloads, and a JSON copy of each record on disk.

- A name is reserved by the INSERT of `reserve` (the table's UNIQUE constraint), in the same transaction
  that picks a --userns=auto range (its own UNIQUE column): two creates racing for a name or a range never
  both win, and the loser learns it before it made anything on the host.
- `save` is an UPDATE that may demand the status it expects (compare and set), so a change made by another
  process meanwhile is not overwritten silently.
- Each record is also written to ``records/<id>.json`` (atomically), so `isobox system check` can rebuild
  the table if the database is lost or damaged.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from isobox.errors import ConflictError, InvalidStateError, NotFoundError
from isobox.model.ids import name_in_use
from isobox.model.migrate import upgrade
from isobox.model.plan import USERNS_SIZE
from isobox.model.record import WorkloadRecord
from isobox.model.status import Status
from isobox.state import codec
from isobox.state.db import Database
from isobox.state.mirror import JsonMirror

USERNS_FIRST = 1_000_000  # above the ranges /etc/subuid usually hands to users (100000…)


class WorkloadRepository:
    def __init__(self, db: Database, records_dir: Path) -> None:
        self.db = db
        self.mirror = JsonMirror(records_dir)

    # ---- writing -------------------------------------------------------------------------------

    def reserve(self, record: WorkloadRecord, *, userns: bool = False) -> WorkloadRecord:
        """Insert a new record, reserving its name (ConflictError if taken) and, with ``userns``, the lowest
        free uid/gid range, which the returned record's plan carries."""

        def insert(tx: sqlite3.Connection) -> WorkloadRecord:
            chosen = record
            if userns:
                from dataclasses import replace

                chosen = replace(record, plan=replace(record.plan, userns_base=_free_userns(tx)))
            try:
                tx.execute(
                    "INSERT INTO workloads (id, name, kind, status, image_id, record, created_at, userns_base) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*_columns(chosen), chosen.created_at, chosen.plan.userns_base),
                )
            except sqlite3.IntegrityError as exc:
                holder = tx.execute("SELECT id FROM workloads WHERE name = ?", (record.name,)).fetchone()
                if holder is None:  # not the name: the uid range, taken between the choice and the insert
                    raise
                raise ConflictError(name_in_use(record.name, holder[0]), op="create", id=record.name) from exc
            _set_volumes(tx, chosen)
            return chosen

        saved = self.db.write(insert)
        self.mirror.write(saved.id, saved)
        return saved

    def save(self, record: WorkloadRecord, *, expect: Status | None = None) -> None:
        """Update a record; with ``expect``, only if the stored one still has that status."""

        def update(tx: sqlite3.Connection) -> None:
            sql = "UPDATE workloads SET name = ?, kind = ?, status = ?, image_id = ?, record = ? WHERE id = ?"
            params: tuple[object, ...] = (*_columns(record)[1:], record.id)
            if expect is not None:
                sql += " AND status = ?"
                params += (expect.value,)
            try:
                changed = tx.execute(sql, params).rowcount
            except sqlite3.IntegrityError as exc:
                holder = tx.execute("SELECT id FROM workloads WHERE name = ?", (record.name,)).fetchone()
                raise ConflictError(name_in_use(record.name, holder[0] if holder else "?"), op="rename",
                                    id=record.id) from exc
            if changed == 0:
                self._missing(tx, record, expect)
            _set_volumes(tx, record)

        self.db.write(update)
        self.mirror.write(record.id, record)

    def _missing(self, tx: sqlite3.Connection, record: WorkloadRecord, expect: Status | None) -> None:
        row = tx.execute("SELECT status FROM workloads WHERE id = ?", (record.id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no such workload: {record.name} (removed meanwhile)", op="save", id=record.id)
        raise InvalidStateError(
            f"workload {record.name} changed meanwhile: it is {row['status']}, not {expect}", op="save", id=record.id
        )

    def delete(self, workload_id: str) -> None:
        self.db.write(lambda tx: tx.execute("DELETE FROM workloads WHERE id = ?", (workload_id,)), frees=True)
        self.mirror.remove(workload_id)

    def restore(self, record: WorkloadRecord) -> None:
        """Insert a record recovered from its JSON copy (`isobox system check`); an existing id is kept."""

        def insert(tx: sqlite3.Connection) -> None:
            tx.execute(
                "INSERT OR IGNORE INTO workloads (id, name, kind, status, image_id, record, created_at, userns_base) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*_columns(record), record.created_at, record.plan.userns_base),
            )
            _set_volumes(tx, record)

        self.db.write(insert)

    # ---- reading -------------------------------------------------------------------------------

    def get(self, name_or_id: str) -> WorkloadRecord:
        """By name, full id or unique id prefix (at least 3 characters)."""
        rows = self.db.query("SELECT record FROM workloads WHERE name = ? OR id = ?", (name_or_id, name_or_id))
        if not rows and len(name_or_id) >= 3 and all(c in "0123456789abcdef" for c in name_or_id):
            rows = self.db.query("SELECT record FROM workloads WHERE id LIKE ?", (name_or_id + "%",))
            if len(rows) > 1:
                raise ConflictError(f"workload id prefix {name_or_id!r} is ambiguous", op="find workload")
        if not rows:
            raise NotFoundError(f"no such workload: {name_or_id}", op="find workload", id=name_or_id)
        return load(rows[0]["record"])

    def find(self, name_or_id: str) -> WorkloadRecord | None:
        try:
            return self.get(name_or_id)
        except NotFoundError:
            return None

    def all(self) -> list[WorkloadRecord]:
        """Newest first."""
        return [load(r["record"]) for r in self.db.query("SELECT record FROM workloads ORDER BY created_at DESC")]

    def image_ids(self) -> set[str]:
        return {r["image_id"] for r in self.db.query("SELECT image_id FROM workloads")}

    def names_using_image(self, image_id: str) -> list[str]:
        return [r["name"] for r in self.db.query("SELECT name FROM workloads WHERE image_id = ?", (image_id,))]

    def names_using_volume(self, volume: str, *, running_only: bool = False) -> list[str]:
        sql = (
            "SELECT w.name FROM workload_volumes v JOIN workloads w ON w.id = v.workload_id WHERE v.volume = ?"
            + (" AND w.status IN ('running', 'paused')" if running_only else "")
            + " ORDER BY w.name"
        )
        return [r["name"] for r in self.db.query(sql, (volume,))]

    def mirrored(self) -> list[WorkloadRecord]:
        """The records' JSON copies (for `isobox system check`)."""
        return [upgrade(record) for record in self.mirror.load_all(WorkloadRecord)]


def load(text: str) -> WorkloadRecord:
    return upgrade(codec.loads_stored(WorkloadRecord, text, "a workload"))


def _columns(record: WorkloadRecord) -> tuple[object, ...]:
    return (record.id, record.name, record.kind.value, record.status.value, record.plan.image_id, codec.dumps(record))


def _set_volumes(tx: sqlite3.Connection, record: WorkloadRecord) -> None:
    """The volumes the record's plan mounts, as rows (what `volume rm` and `prune` ask about)."""
    tx.execute("DELETE FROM workload_volumes WHERE workload_id = ?", (record.id,))
    for volume in sorted({m.volume for m in record.plan.mounts if m.volume}):
        tx.execute("INSERT INTO workload_volumes (workload_id, volume) VALUES (?, ?)", (record.id, volume))


def _free_userns(tx: sqlite3.Connection) -> int:
    """The lowest uid/gid range no workload holds (called inside the inserting transaction)."""
    taken = {row[0] for row in tx.execute("SELECT userns_base FROM workloads WHERE userns_base IS NOT NULL")}
    slot = 0
    while USERNS_FIRST + slot * USERNS_SIZE in taken:
        slot += 1
    return USERNS_FIRST + slot * USERNS_SIZE


__all__ = ["USERNS_FIRST", "WorkloadRepository", "load"]
