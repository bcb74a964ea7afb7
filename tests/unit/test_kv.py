"""The single-host desired-state store (SQLite) meets the KV contract (tests/unit/kv_contract.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit import kv_contract

from isobox.state.db import Database
from isobox.state.kv import SqliteKV


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def kv(db_path: Path) -> Iterator[SqliteKV]:
    db = Database(db_path)
    yield SqliteKV(db)
    db.close()


def test_revisions_and_compare_and_set(kv: SqliteKV) -> None:
    kv_contract.revisions_grow_and_compare_and_set_refuses_stale_writes(kv)


def test_items_by_prefix(kv: SqliteKV) -> None:
    kv_contract.items_are_by_prefix_in_key_order(kv)


def test_changes(kv: SqliteKV) -> None:
    kv_contract.changes_tell_a_watcher_what_happened(kv)


def test_leases(kv: SqliteKV) -> None:
    kv_contract.keys_of_an_expired_lease_go(kv)


def test_racing_writers(kv: SqliteKV, db_path: Path) -> None:
    kv_contract.only_one_of_racing_writers_wins(kv, lambda: SqliteKV(Database(db_path)))


def test_guarded_writes(kv: SqliteKV) -> None:
    kv_contract.guarded_writes_stop_when_the_guard_goes(kv)
