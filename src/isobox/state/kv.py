"""The desired state of services (and, across hosts, of the cluster): a key-value store with revisions, the
shape etcd has, so the reconciler never knows which store it talks to.

- On one host it is SQLite (`SqliteKV`, tables kv_desired, kv_changes and kv_leases in state/db.py), as k3s lets SQLite
  stand in for etcd; across hosts it is etcd (state/etcd.py implements the same protocol).
- Every write bumps one store-wide revision; each key remembers the revision of its last write
  (`mod_revision`). A write or delete may demand the revision it expects (compare and set, etcd's
  transactions): two writers racing on one key never both win.
- A key may belong to a lease (etcd's leases: the key goes when the lease is not kept alive). SQLite's
  leases expire by time too, so the single-host store behaves as etcd's for code that uses them.
- `changes(prefix, after)` lists the keys written or deleted after a revision (a watch, by polling where the
  store cannot push).
- A write may also be fenced (`guard`): it happens only while another key still has the revision the writer
  knows, e.g. its leader key or its node key, both held by its lease (state/election.py). A writer whose lease
  expired (a paused or partitioned node) can then no longer write, even if it still believes it leads: the
  fencing that Jepsen's analysis of etcd 3.4 shows locks alone do not give.

Keys are "/"-separated paths (`services/<id>`, `assignments/<service>/<slot>`, `nodes/<name>`); values are
JSON text that model/ dataclasses round-trip through state/codec.py.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Protocol

from isobox.errors import ConflictError
from isobox.state.db import Database


@dataclass(frozen=True)
class Entry:
    key: str
    value: str
    mod_revision: int
    lease: int | None = None


@dataclass(frozen=True)
class Guard:
    """The fence of a write: it happens only while ``key`` still has ``mod_revision`` (0: while it does not
    exist), in the same transaction as the write; else ConflictError ("fenced")."""

    key: str
    mod_revision: int


@dataclass(frozen=True)
class Change:
    key: str
    revision: int
    value: str | None  # None: deleted


class KV(Protocol):
    def get(self, key: str) -> Entry | None: ...

    def items(self, prefix: str) -> list[Entry]:
        """Every live key under ``prefix``, in key order."""
        ...

    def put(
        self, key: str, value: str, *, expect: int | None = None, lease: int | None = None, guard: Guard | None = None
    ) -> int:
        """Write; with ``expect``, only if the key's mod_revision is that (0: the key must not exist), else
        ConflictError; with ``guard``, only while the guard holds (else ConflictError). Returns the new revision."""
        ...

    def delete(self, key: str, *, expect: int | None = None, guard: Guard | None = None) -> bool:
        """Remove (with ``expect`` and ``guard`` as for put); whether the key existed."""
        ...

    def revision(self) -> int:
        """The store's current revision."""
        ...

    def changes(self, prefix: str, after: int) -> list[Change]:
        """What happened under ``prefix`` since revision ``after`` (oldest first)."""
        ...

    def grant(self, ttl_s: float) -> int:
        """A lease of ``ttl_s`` seconds; keys put with it go when it is revoked or not kept alive."""
        ...

    def keepalive(self, lease: int) -> bool:
        """Renew a lease; False if it already expired (its keys are gone)."""
        ...

    def revoke(self, lease: int) -> None: ...


CHANGES_KEPT = 10_000  # the newest changes are kept for watchers; older ones are compacted, as etcd does


class SqliteKV:
    """The KV protocol on the state database (one host)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _expire(self, tx: sqlite3.Connection) -> None:
        now = time.time()
        expired = [row[0] for row in tx.execute("SELECT id FROM kv_leases WHERE expires_at < ?", (now,))]
        for lease in expired:
            self._drop_lease(tx, lease)

    def _drop_lease(self, tx: sqlite3.Connection, lease: int) -> None:
        for (key,) in list(tx.execute("SELECT key FROM kv_desired WHERE lease = ?", (lease,))):
            self._record(tx, key, None)
        tx.execute("DELETE FROM kv_desired WHERE lease = ?", (lease,))
        tx.execute("DELETE FROM kv_leases WHERE id = ?", (lease,))

    def _next_revision(self, tx: sqlite3.Connection) -> int:
        row = tx.execute("SELECT MAX(revision) FROM kv_changes").fetchone()
        return int(row[0] or 0) + 1

    def _record(self, tx: sqlite3.Connection, key: str, value: str | None) -> int:
        revision = self._next_revision(tx)
        tx.execute("INSERT INTO kv_changes (revision, key, value) VALUES (?, ?, ?)", (revision, key, value))
        tx.execute("DELETE FROM kv_changes WHERE revision <= ?", (revision - CHANGES_KEPT,))
        return revision

    def _check(self, tx: sqlite3.Connection, key: str, expect: int | None) -> sqlite3.Row | None:
        row: sqlite3.Row | None = tx.execute(
            "SELECT mod_revision FROM kv_desired WHERE key = ?", (key,)
        ).fetchone()
        if expect is not None and (row["mod_revision"] if row is not None else 0) != expect:
            found = row["mod_revision"] if row is not None else "none"
            raise ConflictError(f"{key} changed meanwhile (revision {found}, expected {expect})", op="write",
                                id=key)
        return row

    def _fence(self, tx: sqlite3.Connection, guard: Guard | None, key: str) -> None:
        if guard is None:
            return
        row = tx.execute("SELECT mod_revision FROM kv_desired WHERE key = ?", (guard.key,)).fetchone()
        found = int(row["mod_revision"]) if row is not None else 0
        if found != guard.mod_revision:
            raise ConflictError(
                f"fenced: {guard.key} is at revision {found or 'none'}, not {guard.mod_revision} (the writer lost its "
                "lease or its leadership)", op="write", id=key)

    def get(self, key: str) -> Entry | None:
        self.db.write(self._expire)
        rows = self.db.query("SELECT * FROM kv_desired WHERE key = ?", (key,))
        return Entry(rows[0]["key"], rows[0]["value"], rows[0]["mod_revision"], rows[0]["lease"]) if rows else None

    def items(self, prefix: str) -> list[Entry]:
        self.db.write(self._expire)
        rows = self.db.query(
            "SELECT * FROM kv_desired WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
        )
        return [Entry(r["key"], r["value"], r["mod_revision"], r["lease"]) for r in rows]

    def put(
        self, key: str, value: str, *, expect: int | None = None, lease: int | None = None, guard: Guard | None = None
    ) -> int:
        def write(tx: sqlite3.Connection) -> int:
            self._expire(tx)
            self._fence(tx, guard, key)
            self._check(tx, key, expect)
            if lease is not None and tx.execute("SELECT 1 FROM kv_leases WHERE id = ?", (lease,)).fetchone() is None:
                raise ConflictError(f"lease {lease} expired", op="write", id=key)
            revision = self._record(tx, key, value)
            tx.execute(
                "INSERT INTO kv_desired (key, value, mod_revision, lease) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision, "
                "lease = excluded.lease",
                (key, value, revision, lease),
            )
            return revision

        return self.db.write(write)

    def delete(self, key: str, *, expect: int | None = None, guard: Guard | None = None) -> bool:
        def write(tx: sqlite3.Connection) -> bool:
            self._expire(tx)
            self._fence(tx, guard, key)
            if self._check(tx, key, expect) is None:
                return False
            self._record(tx, key, None)
            tx.execute("DELETE FROM kv_desired WHERE key = ?", (key,))
            return True

        return self.db.write(write)

    def revision(self) -> int:
        row = self.db.query("SELECT MAX(revision) AS revision FROM kv_changes")
        return int(row[0]["revision"] or 0)

    def changes(self, prefix: str, after: int) -> list[Change]:
        self.db.write(self._expire)
        rows = self.db.query(
            "SELECT revision, key, value FROM kv_changes WHERE revision > ? AND substr(key, 1, ?) = ? "
            "ORDER BY revision",
            (after, len(prefix), prefix),
        )
        return [Change(r["key"], r["revision"], r["value"]) for r in rows]

    def grant(self, ttl_s: float) -> int:
        def write(tx: sqlite3.Connection) -> int:
            cursor = tx.execute("INSERT INTO kv_leases (ttl_s, expires_at) VALUES (?, ?)", (ttl_s, time.time() + ttl_s))
            return int(cursor.lastrowid or 0)

        return self.db.write(write)

    def keepalive(self, lease: int) -> bool:
        def write(tx: sqlite3.Connection) -> bool:
            self._expire(tx)
            return bool(
                tx.execute("UPDATE kv_leases SET expires_at = ? + ttl_s WHERE id = ?", (time.time(), lease)).rowcount
            )

        return self.db.write(write)

    def revoke(self, lease: int) -> None:
        self.db.write(lambda tx: self._drop_lease(tx, lease))
