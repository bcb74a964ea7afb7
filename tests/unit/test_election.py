"""Election, fencing and held leases (state/election.py) on the single-host store, and the held lease's
local deadline against a fake clock and an unreachable store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit import election_cases

from isobox.errors import HostError
from isobox.state.db import Database
from isobox.state.election import HeldLease
from isobox.state.kv import SqliteKV


@pytest.fixture
def make(tmp_path: Path) -> Iterator[election_cases.MakeKV]:
    opened: list[Database] = []

    def one() -> SqliteKV:
        opened.append(Database(tmp_path / "state.db"))
        return SqliteKV(opened[-1])

    yield one
    for db in opened:
        db.close()


def test_one_leader_at_a_time(make: election_cases.MakeKV) -> None:
    election_cases.one_leader_at_a_time(make)


def test_waiting_candidate_takes_over(make: election_cases.MakeKV) -> None:
    election_cases.a_waiting_candidate_takes_over_when_the_leader_resigns(make)


def test_expired_leader_is_fenced(make: election_cases.MakeKV) -> None:
    election_cases.a_leader_whose_lease_expired_is_fenced(make)


def test_held_lease(make: election_cases.MakeKV) -> None:
    election_cases.a_renewed_lease_stays_and_an_expired_one_is_lost(make)


class _Store:
    """A store whose renewals answer as told: True, False, or unreachable (HostError)."""

    def __init__(self) -> None:
        self.answer: bool | None = True

    def grant(self, ttl_s: float) -> int:
        return 7

    def keepalive(self, lease: int) -> bool:
        if self.answer is None:
            raise HostError("no etcd endpoint answered", op="renew etcd lease")
        return self.answer


def test_held_lease_deadline_counts_from_before_the_renewal() -> None:
    now = [100.0]
    store = _Store()
    held = HeldLease(store, 5.0, clock=lambda: now[0])  # type: ignore[arg-type]
    assert held.valid_until == 105.0
    now[0] = 103.0
    assert held.renew() is True and held.valid_until == 108.0
    store.answer = None  # the store cannot be reached: the deadline does not move
    now[0] = 107.0
    assert held.renew() is True and held.remaining_s() == 1.0
    now[0] = 108.0
    assert held.renew() is False and not held.valid()
    store.answer = True  # back, and the lease still exists in the store: valid again from this renewal
    assert held.renew() is True and held.valid_until == 113.0
    store.answer = False  # the store says it expired: lost for good
    assert held.renew() is False and held.valid_until == float("-inf")
