"""The event log: every SQL statement about events (table ``events``, the newest 10,000 kept).

The table is made on first use (CREATE TABLE IF NOT EXISTS in the first write or read of a process), so
databases of any schema version gain it without a migration; it holds nothing a record depends on.
Its ``id`` is AUTOINCREMENT, never reused, so a follower resumes after the last id it saw and misses
nothing written meanwhile, whichever process wrote it.
"""

from __future__ import annotations

import json
import sqlite3

from isobox.model.events import Event, EventType
from isobox.state.db import Database

KEEP_EVENTS = 10_000
TRIM_EVERY = 256  # ids between two trims of the oldest events

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time_ns INTEGER NOT NULL,"
    " type TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " actor_id TEXT NOT NULL,"
    " attributes TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_by_time ON events (time_ns)",
)


class EventRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._ready = False

    def _ensure(self) -> None:
        if self._ready:
            return
        if not self.db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'events'"):

            def create(tx: sqlite3.Connection) -> None:
                for statement in _SCHEMA:
                    tx.execute(statement)

            self.db.write(create)
        self._ready = True

    def append(self, event: Event) -> int:
        """Store ``event``; its id. Every TRIM_EVERY ids, events beyond the newest KEEP_EVENTS go."""
        self._ensure()

        def insert(tx: sqlite3.Connection) -> int:
            cursor = tx.execute(
                "INSERT INTO events (time_ns, type, action, actor_id, attributes) VALUES (?, ?, ?, ?, ?)",
                (event.time_ns, event.type.value, event.action, event.actor_id, json.dumps(dict(event.attributes))),
            )
            new_id = int(cursor.lastrowid or 0)
            if new_id % TRIM_EVERY == 0:
                tx.execute("DELETE FROM events WHERE id <= ?", (new_id - KEEP_EVENTS,))
            return new_id

        return self.db.write(insert)

    def after(self, last_id: int, *, since_ns: int = 0, until_ns: int | None = None, limit: int = 1000) -> list[Event]:
        """Events with an id above ``last_id`` and a time in [since_ns, until_ns], oldest first."""
        self._ensure()
        sql = "SELECT * FROM events WHERE id > ? AND time_ns >= ?"
        params: tuple[object, ...] = (last_id, since_ns)
        if until_ns is not None:
            sql += " AND time_ns <= ?"
            params += (until_ns,)
        rows = self.db.query(sql + " ORDER BY id LIMIT ?", (*params, limit))
        return [_load(row) for row in rows]

    def last(self, actor_id: str, action: str) -> Event | None:
        """The newest event of ``actor_id`` with ``action``."""
        self._ensure()
        rows = self.db.query("SELECT * FROM events WHERE actor_id = ? AND action = ? ORDER BY id DESC LIMIT 1",
                             (actor_id, action))
        return _load(rows[0]) if rows else None

    def last_id(self) -> int:
        self._ensure()
        rows = self.db.query("SELECT MAX(id) AS id FROM events")
        return int(rows[0]["id"] or 0) if rows else 0


def _load(row: sqlite3.Row) -> Event:
    attributes = json.loads(row["attributes"])
    return Event(EventType(row["type"]), row["action"], row["actor_id"], tuple(sorted(attributes.items())),
                 int(row["time_ns"]), int(row["id"]))
