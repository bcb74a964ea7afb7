"""The SQLite database: one file, WAL mode, schema created on first open.

Every write is one transaction, so a crash leaves either the old or the new record, never half of one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from isobox.state import images as image_records
from isobox.state.locks import locked

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id              TEXT PRIMARY KEY,      -- digest of the image config blob
    manifest_digest TEXT NOT NULL,
    record          TEXT NOT NULL,         -- JSON ImageRecord
    created_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS image_refs (
    name     TEXT PRIMARY KEY,             -- normalized reference, e.g. docker.io/library/busybox:latest
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS image_digests (  -- RepoDigests: see state/images.py
    repository      TEXT NOT NULL,         -- registry/repository, e.g. docker.io/library/busybox
    digest          TEXT NOT NULL,         -- as pulled or pushed: an index's digest for a multi-platform image
    image_id        TEXT NOT NULL REFERENCES images(id),
    manifest_digest TEXT NOT NULL,         -- the image manifest behind it
    platform        TEXT NOT NULL,
    created_at      REAL NOT NULL,
    PRIMARY KEY (repository, digest, image_id)
);
CREATE INDEX IF NOT EXISTS image_digests_by_image ON image_digests (image_id);
CREATE TABLE IF NOT EXISTS workloads (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    image_id    TEXT NOT NULL,
    record      TEXT NOT NULL,             -- JSON of the RunPlan and runtime facts
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name       TEXT PRIMARY KEY,
    anonymous  INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open transactions explicitly with BEGIN IMMEDIATE, so two isobox
        # processes writing at once serialize on the write lock instead of failing on upgrade.
        self._conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        # Switching a new database to WAL and creating the schema take locks that SQLite's busy handler
        # does not wait for; two isobox processes opening a fresh root at once would see "database is
        # locked". An flock next to the file serializes just this step.
        with locked(path.parent, path.name + ".init", shared=False):
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(SCHEMA)
            image_records.backfill(self._conn)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        return list(self._conn.execute(sql, params))
