"""The SQLite database: one file, WAL mode, a versioned schema, and SQLite's failures translated once.

Every write is one transaction (BEGIN IMMEDIATE), so a crash leaves either the old or the new record, never
half of one, and two isobox processes writing at once serialize on SQLite's write lock. Only the
repositories in state/ write SQL; everything else calls them.

Failures are isobox errors, never sqlite3 tracebacks:
- a full file system is a HostError naming it. Writes (``Database.write``) first give back isobox's
  reserved space (``RESERVE_BYTES`` in ``lib/.reserve``) and try once more, so `rm`, `rmi` and `prune` can
  still record what they freed on a full disk; the reserve is taken again at a later open with room to spare;
- a damaged file, or an empty one while images, workloads or volumes exist beside it, is a StateError
  that names the file and `isobox system check`, which rebuilds the records from what is on disk. An empty
  database is never silently re-created over existing content: the next `prune` would delete all of it.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from isobox.errors import HostError, StateError
from isobox.state import build_cache
from isobox.state import images as image_records
from isobox.state.locks import locked

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = 4
RESERVE_NAME = ".reserve"
RESERVE_BYTES = 8 * 1024 * 1024
RESERVE_RETAKE_FREE_BYTES = 64 * 1024 * 1024  # the reserve is taken again only with this much free

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
    name        TEXT NOT NULL UNIQUE,      -- reserved by the INSERT of `create`: two creates never share one
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    image_id    TEXT NOT NULL,
    record      TEXT NOT NULL,             -- JSON WorkloadRecord
    created_at  REAL NOT NULL,
    userns_base INTEGER                    -- the host uid/gid range of a --userns=auto workload
);
CREATE UNIQUE INDEX IF NOT EXISTS workloads_userns ON workloads(userns_base) WHERE userns_base IS NOT NULL;
CREATE TABLE IF NOT EXISTS workload_volumes (
    workload_id TEXT NOT NULL REFERENCES workloads(id) ON DELETE CASCADE,
    volume      TEXT NOT NULL,
    PRIMARY KEY (workload_id, volume)
);
CREATE INDEX IF NOT EXISTS workload_volumes_volume ON workload_volumes(volume);
CREATE TABLE IF NOT EXISTS volumes (
    name       TEXT PRIMARY KEY,
    anonymous  INTEGER NOT NULL,
    created_at REAL NOT NULL,
    labels     TEXT NOT NULL DEFAULT '{}', -- JSON object, as given at create
    options    TEXT NOT NULL DEFAULT '{}'  -- JSON object: the driver options given at create (type, size)
);
CREATE TABLE IF NOT EXISTS networks (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    record     TEXT NOT NULL,              -- JSON NetworkRecord
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    network_id  TEXT NOT NULL REFERENCES networks(id),
    workload_id TEXT NOT NULL,
    ip          TEXT NOT NULL,
    record      TEXT NOT NULL,             -- JSON Endpoint
    PRIMARY KEY (network_id, workload_id),
    UNIQUE (network_id, ip)
);
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kv_desired (        -- the desired state of services: state/kv.py
    key          TEXT PRIMARY KEY,
    value        TEXT NOT NULL,
    mod_revision INTEGER NOT NULL,
    lease        INTEGER
);
CREATE TABLE IF NOT EXISTS kv_changes (
    revision INTEGER PRIMARY KEY,              -- the store-wide revision of each write or delete
    key      TEXT NOT NULL,
    value    TEXT                              -- NULL: deleted
);
CREATE TABLE IF NOT EXISTS kv_leases (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ttl_s      REAL NOT NULL,
    expires_at REAL NOT NULL
);
""" + build_cache.TABLES + ";\n"


def _statements(script: str) -> list[str]:
    """The statements of a script, for running them inside one transaction (executescript would COMMIT
    whatever transaction is open first)."""
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """Databases of isobox before the versioned schema: index what was only inside JSON records."""
    import json

    if "userns_base" not in _columns(conn, "workloads"):
        conn.execute("ALTER TABLE workloads ADD COLUMN userns_base INTEGER")
    for column in ("labels", "options"):
        if column not in _columns(conn, "volumes"):
            conn.execute(f"ALTER TABLE volumes ADD COLUMN {column} TEXT NOT NULL DEFAULT '{{}}'")
    for statement in _statements(SCHEMA):
        conn.execute(statement)
    for workload_id, text in list(conn.execute("SELECT id, record FROM workloads")):
        plan = json.loads(text).get("plan", {})
        conn.execute("UPDATE workloads SET userns_base = ? WHERE id = ?", (plan.get("userns_base"), workload_id))
        for mount in plan.get("mounts") or ():
            if mount.get("volume"):
                conn.execute(
                    "INSERT OR IGNORE INTO workload_volumes (workload_id, volume) VALUES (?, ?)",
                    (workload_id, mount["volume"]),
                )


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """RepoDigests (image_digests) for images pulled before they were kept: what the old records can tell."""
    if "options" not in _columns(conn, "volumes"):
        conn.execute("ALTER TABLE volumes ADD COLUMN options TEXT NOT NULL DEFAULT '{}'")
    for statement in _statements(SCHEMA):
        conn.execute(statement)
    image_records.backfill(conn)


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """The desired-state tables of services (state/kv.py)."""
    for statement in _statements(SCHEMA):
        conn.execute(statement)


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """The build cache of `isobox build` (state/build_cache.py): new tables, nothing to convert."""
    for statement in _statements(SCHEMA):
        conn.execute(statement)


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _migrate_0_to_1,
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
}


class Database:
    """One connection, shared by the threads of one process under a lock (an API server gives each worker
    thread a Context of its own anyway)."""

    def __init__(self, path: Path, *, content_dirs: Iterable[Path] = (), allow_empty: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        if fresh and not allow_empty:
            _refuse_if_content(path, content_dirs)
        try:
            # isolation_level=None: transactions are opened explicitly with BEGIN IMMEDIATE, so two isobox
            # processes writing at once serialize on the write lock instead of failing on upgrade.
            self._conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                self._upgrade(version)
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise translate(exc, path, "open state") from exc
        _keep_reserve(path.parent)

    def _upgrade(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state database was written by a newer isobox (schema {version}, this one knows "
                f"{SCHEMA_VERSION}): upgrade isobox",
                op="open state",
                path=str(self.path),
            )
        # Switching a new database to WAL and creating the schema take locks that SQLite's busy handler
        # does not wait for; two isobox processes opening a fresh root at once would see "database is
        # locked". An flock next to the file serializes just this step.
        with locked(self.path.parent, self.path.name + ".init", shared=False):
            conn = self._conn
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:
                return
            conn.execute("PRAGMA journal_mode=WAL")
            existing = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            conn.execute("BEGIN IMMEDIATE")
            try:
                if "workloads" not in existing:
                    for statement in _statements(SCHEMA):
                        conn.execute(statement)
                else:
                    while version < SCHEMA_VERSION:
                        MIGRATIONS[version](conn)
                        version += 1
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. Prefer `write`, which also survives a full disk."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate(exc, self.path, "write state") from exc
            try:
                yield self._conn
            except sqlite3.Error as exc:
                self._rollback()
                raise translate(exc, self.path, "write state") from exc
            except BaseException:
                self._rollback()
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise translate(exc, self.path, "write state") from exc

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.debug("rollback failed", exc_info=True)

    def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``change`` in one write transaction. On a full file system, release isobox's reserved space
        and run it once more: a removal must be able to record itself to free space at all."""
        try:
            with self.transaction() as tx:
                return change(tx)
        except HostError as exc:
            if getattr(exc, "errno", None) != errno.ENOSPC or not release_reserve(self.path.parent):
                raise
            log.warning("the file system of %s is full: using isobox's reserved space", self.path)
        with self.transaction() as tx:
            return change(tx)

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return list(self._conn.execute(sql, params))
            except sqlite3.Error as exc:
                raise translate(exc, self.path, "read state") from exc


class StateHostError(HostError):
    """A HostError that keeps the errno of SQLite's failure (ENOSPC for a full disk)."""

    def __init__(self, message: str, *, op: str, path: str, error_number: int) -> None:
        super().__init__(message, op=op, path=path)
        self.errno = error_number


def translate(exc: sqlite3.Error, path: Path, op: str) -> HostError | StateError:
    """SQLite's failure as the isobox error a user can act on."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("disk is full" in text or "disk I/O error" in text):
        where = mount_point(path)
        return StateHostError(
            f"the file system at {where} is full ({text}): free space there, e.g. `isobox system prune`",
            op=op,
            path=str(path),
            error_number=errno.ENOSPC if "full" in text else errno.EIO,
        )
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return StateHostError(
            f"the state database is locked by another isobox process ({text})", op=op, path=str(path),
            error_number=errno.EBUSY,
        )
    return StateError(
        f"the state database is damaged ({text}): run `isobox system check` to rebuild it from what is on disk",
        op=op,
        path=str(path),
    )


def mount_point(path: Path) -> str:
    """The mount point of the file system holding ``path`` (for messages about a full disk)."""
    current = path if path.exists() else path.parent
    current = current.resolve()
    while current != current.parent and not os.path.ismount(current):
        current = current.parent
    return str(current)


def _refuse_if_content(path: Path, content_dirs: Iterable[Path]) -> None:
    for directory in content_dirs:
        try:
            with os.scandir(directory) as entries:
                if any(not entry.name.startswith(".") for entry in entries):
                    raise StateError(
                        f"the state database is {'empty' if path.exists() else 'missing'} while {directory} holds "
                        "isobox content: run `isobox system check` to rebuild the records from it (isobox does not "
                        "start over on top of existing images, workloads and volumes)",
                        op="open state",
                        path=str(path),
                    )
        except FileNotFoundError:
            continue


def _keep_reserve(directory: Path) -> None:
    """Hold RESERVE_BYTES of the state's file system for a full-disk removal (see module docstring)."""
    reserve = directory / RESERVE_NAME
    try:
        if reserve.stat().st_size >= RESERVE_BYTES:
            return
    except FileNotFoundError:
        pass
    try:
        if os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize < RESERVE_RETAKE_FREE_BYTES:
            return
        fd = os.open(reserve, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        finally:
            os.close(fd)
    except OSError as exc:
        log.debug("no space reserve at %s: %s", reserve, exc)
        reserve.unlink(missing_ok=True)


def release_reserve(directory: Path) -> bool:
    """Free the reserved space; True if there was any to free."""
    try:
        (directory / RESERVE_NAME).unlink()
    except FileNotFoundError:
        return False
    return True
