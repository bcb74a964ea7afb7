"""The database's failures as isobox sees them: the two space reserves, reading without shared memory on a
nearly full disk, and what `system check` finds in a database file."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from isobox.errors import HostError
from isobox.state import db as database
from isobox.state import dbfile
from isobox.state.db import REMOVAL_RESERVE_NAME, RESERVE_NAME, Database, StateHostError
from isobox.state.dbfile import Verdict


def _full() -> StateHostError:
    return StateHostError("full", op="write state", path="x", error_number=errno.ENOSPC)


def test_writes_give_back_the_first_reserve_and_removals_the_second(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(tmp_path / "state.db", allow_empty=True)
    monkeypatch.setattr(database, "RESERVE_RETAKE_FREE_BYTES", 0)
    for name in (RESERVE_NAME, REMOVAL_RESERVE_NAME):
        (tmp_path / name).write_bytes(b"\0" * 16)
    failures = iter([_full(), _full(), _full()])
    real = db.transaction

    def transaction():  # type: ignore[no-untyped-def]
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real()

    monkeypatch.setattr(db, "transaction", transaction)
    with pytest.raises(HostError):  # a plain write: the first reserve only, then the error
        db.write(lambda tx: tx.execute("SELECT 1"))
    assert not (tmp_path / RESERVE_NAME).exists() and (tmp_path / REMOVAL_RESERVE_NAME).exists()
    assert db.write(lambda tx: 42, frees=True) == 42  # a removal: the second reserve too
    assert not (tmp_path / REMOVAL_RESERVE_NAME).exists()
    db.close()


def test_a_nearly_full_disk_is_read_without_shared_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Database(tmp_path / "state.db", allow_empty=True).close()
    monkeypatch.setattr(database, "_free_bytes", lambda directory: 0)
    db = Database(tmp_path / "state.db")
    assert db.query("PRAGMA locking_mode")[0][0] == "exclusive"
    assert db.query("SELECT count(*) FROM workloads")[0][0] == 0
    db.close()


def test_examine_tells_sound_empty_missing_damaged_and_newer(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    assert dbfile.examine(path)[0] is Verdict.MISSING
    path.write_bytes(b"")
    assert dbfile.examine(path)[0] is Verdict.EMPTY
    path.unlink()
    Database(path, allow_empty=True).close()
    assert dbfile.examine(path)[0] is Verdict.SOUND
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    assert dbfile.examine(path)[0] is Verdict.NEWER
    path.write_bytes(b"SQLite format 3\0" + b"\xde\xad" * 2000)
    assert dbfile.examine(path)[0] is Verdict.DAMAGED


def test_move_aside_takes_the_wal_along(tmp_path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"state.db{suffix}").write_text(suffix or "main")
    moved = dbfile.move_aside(tmp_path / "state.db", "T")
    assert moved.name == "state.db.damaged-T"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db.damaged-T", "state.db.damaged-T-shm",
                                                          "state.db.damaged-T-wal"]
