"""The SQLite database: one file, WAL mode, a versioned schema, and SQLite's failures translated once.

Every write is one transaction (BEGIN IMMEDIATE), so a crash leaves either the old or the new record, never
half of one, and two isobox processes writing at once serialize on SQLite's write lock. Only the
repositories in state/ write SQL; everything else calls them.

Failures are isobox errors, never sqlite3 tracebacks:
- a full file system is a HostError naming it. isobox keeps two reserves of space beside the database
  (``RESERVE_BYTES`` each, lib/.reserve and lib/.reserve-removal): a write that fails for space gives back
  the first and tries once more, and a removal (``write(..., frees=True)``: rm, rmi, prune, volume rm) may
  also give back the second, so the commands that free space can still record what they freed after
  everything else has used the first. Each is taken again at a later open with room to spare;
- reading needs no space: where SQLite cannot make its shared-memory index of the WAL on a full disk, the
  database is opened in exclusive locking mode, which keeps that index in memory (sqlite.org/wal.html,
  "Use of WAL Without Shared-Memory"), so `ps`, `inspect` and the removals can still read their records;
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
REMOVAL_RESERVE_NAME = ".reserve-removal"
RESERVE_BYTES = 8 * 1024 * 1024
RESERVE_RETAKE_FREE_BYTES = 4 * RESERVE_BYTES  # a reserve is taken again only with this much free
LOW_SPACE_BYTES = 1024 * 1024  # below this, the database is opened without its shared-memory file

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
            if _free_bytes(path.parent) < LOW_SPACE_BYTES:
                # Nearly full: SQLite's shared-memory index, mapped from a file it may not be able to back,
                # could end this process with SIGBUS on first touch; read without it (module docstring).
                raise sqlite3.OperationalError("disk is full")
            self._conn = self._connect()
        except sqlite3.Error as exc:
            if not _is_full(exc):
                raise translate(exc, path, "open state") from exc
            try:  # a full disk: read without the shared-memory index (see module docstring)
                self._conn = self._connect(exclusive=True)
            except sqlite3.Error as again:
                raise translate(again, path, "open state") from again
            log.warning("the file system of %s is full: its records are read without sharing them", path)
        _keep_reserve(path.parent, RESERVE_NAME)
        _keep_reserve(path.parent, REMOVAL_RESERVE_NAME)

    def _connect(self, *, exclusive: bool = False) -> sqlite3.Connection:
        # isolation_level=None: transactions are opened explicitly with BEGIN IMMEDIATE, so two isobox
        # processes writing at once serialize on the write lock instead of failing on upgrade.
        conn = sqlite3.connect(str(self.path), timeout=30.0 if not exclusive else 5.0, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        try:
            if exclusive:
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._conn = conn
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                self._upgrade(version)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
        return conn

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

    def write(self, change: Callable[[sqlite3.Connection], T], *, frees: bool = False) -> T:
        """Run ``change`` in one write transaction. On a full file system, release isobox's reserved space
        and run it once more; a change that ``frees`` space (a removal) may use the second reserve too: a
        removal must be able to record itself to free space at all."""
        reserves = [RESERVE_NAME, REMOVAL_RESERVE_NAME] if frees else [RESERVE_NAME]
        while True:
            try:
                with self.transaction() as tx:
                    return change(tx)
            except HostError as exc:
                if getattr(exc, "errno", None) != errno.ENOSPC:
                    raise
                while reserves and not release_reserve(self.path.parent, reserves[0]):
                    reserves.pop(0)  # already given back
                if not reserves:
                    raise
                log.warning("the file system of %s is full: using isobox's reserved space (%s)", self.path,
                            reserves.pop(0))

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
    if _is_full(exc):
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
    from isobox.linux.fs import mount_point as found

    return found(path)


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


def _free_bytes(directory: Path) -> int:
    try:
        info = os.statvfs(directory)
    except OSError:
        return LOW_SPACE_BYTES
    return info.f_bavail * info.f_frsize


def _is_full(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("disk is full" in text or "disk I/O error" in text)


def _keep_reserve(directory: Path, name: str) -> None:
    """Hold RESERVE_BYTES of the state's file system for a full-disk write (see module docstring)."""
    reserve = directory / name
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


def release_reserve(directory: Path, name: str = RESERVE_NAME) -> bool:
    """Free a reserve; True if there was any to free."""
    try:
        (directory / name).unlink()
    except FileNotFoundError:
        return False
    return True
