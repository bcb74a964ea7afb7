"""The build cache of `isobox build`: one row per step that was built, found by its cache key.

A key (builder/cachekey.py) is a digest of everything a step's result depends on: the key of the step
before it (so the whole chain back to the base image), the instruction as expanded, the build args a
RUN sees and the digests of the context files a COPY or ADD reads. The row says what the step made:
the layer (its blob and unpacked directory in the image store, by digest and chain ID) or nothing
(a step that changes only the image config, or a RUN that changed no file), and the history time it
recorded, so a rebuild from the cache gives the same image.

A second table keeps whole builds (``build_results``): the image a build made from inputs that did not
change since (the Dockerfile, the options, every file of the context by its metadata), so a rebuild of
the same thing skips the parser and the plan (service/build_memo.py).

Layers and blobs named here are kept by the image store's garbage collection (images/store.py) until
`isobox builder prune` (or `system prune`) deletes the rows. Only this module holds SQL about the cache.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from isobox.state.db import Database

TABLES = """
CREATE TABLE IF NOT EXISTS build_cache (
    key        TEXT PRIMARY KEY,           -- sha256 of the step's inputs (builder/cachekey.py)
    diff_id    TEXT NOT NULL,              -- the layer's uncompressed digest, '' when the step made no layer
    digest     TEXT NOT NULL,              -- the layer blob in the image store, '' likewise
    chain_id   TEXT NOT NULL,              -- the unpacked layer directory (images/store.py), '' likewise
    size       INTEGER NOT NULL,           -- bytes of the blob
    media_type TEXT NOT NULL,
    created    TEXT NOT NULL,              -- the history entry's time (RFC 3339)
    created_at REAL NOT NULL,
    used_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS build_results (
    key        TEXT PRIMARY KEY,           -- sha256 of a whole build's inputs (service/build_memo.py)
    image_id   TEXT NOT NULL,
    record     TEXT NOT NULL,              -- JSON: the images it read (reference, platform, id) and its steps
    created_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class CacheEntry:
    key: str
    diff_id: str
    digest: str
    chain_id: str
    size: int
    media_type: str
    created: str

    @property
    def has_layer(self) -> bool:
        return bool(self.diff_id)


@dataclass(frozen=True)
class CacheUsage:
    entries: int
    layers: int
    size_bytes: int  # the blobs of the layers only the cache keeps are counted by the caller


def _entry(row: sqlite3.Row) -> CacheEntry:
    return CacheEntry(row["key"], row["diff_id"], row["digest"], row["chain_id"], int(row["size"]),
                      row["media_type"], row["created"])


class BuildCacheRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> CacheEntry | None:
        rows = self.db.query("SELECT * FROM build_cache WHERE key = ?", (key,))
        return _entry(rows[0]) if rows else None

    def put(self, entry: CacheEntry) -> None:
        now = time.time()
        self.db.write(lambda tx: tx.execute(
            "INSERT OR REPLACE INTO build_cache (key, diff_id, digest, chain_id, size, media_type, created, "
            "created_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.key, entry.diff_id, entry.digest, entry.chain_id, entry.size, entry.media_type, entry.created,
             now, now)))

    def delete(self, key: str) -> None:
        self.db.write(lambda tx: tx.execute("DELETE FROM build_cache WHERE key = ?", (key,)))

    def all(self) -> list[CacheEntry]:
        return [_entry(r) for r in self.db.query("SELECT * FROM build_cache ORDER BY created_at")]

    def clear(self) -> list[CacheEntry]:
        """Delete every entry and whole-build result; returns the entries deleted."""

        def clear(tx: sqlite3.Connection) -> list[CacheEntry]:
            rows = [_entry(r) for r in tx.execute("SELECT * FROM build_cache").fetchall()]
            tx.execute("DELETE FROM build_cache")
            tx.execute("DELETE FROM build_results")
            return rows

        return self.db.write(clear)

    def result(self, key: str) -> tuple[str, str] | None:
        """(image id, JSON record) of the whole build ``key``, or None."""
        rows = self.db.query("SELECT image_id, record FROM build_results WHERE key = ?", (key,))
        return (str(rows[0]["image_id"]), str(rows[0]["record"])) if rows else None

    def put_result(self, key: str, image_id: str, record: str) -> None:
        self.db.write(lambda tx: tx.execute(
            "INSERT OR REPLACE INTO build_results (key, image_id, record, created_at) VALUES (?, ?, ?, ?)",
            (key, image_id, record, time.time())))

    def forget_result(self, key: str) -> None:
        self.db.write(lambda tx: tx.execute("DELETE FROM build_results WHERE key = ?", (key,)))

    def kept_layers(self) -> tuple[set[str], set[str]]:
        """(blob digests, chain IDs) the cache refers to: what the image store's gc must keep."""
        rows = self.db.query("SELECT digest, chain_id FROM build_cache WHERE diff_id != ''")
        return {str(r["digest"]) for r in rows}, {str(r["chain_id"]) for r in rows}
