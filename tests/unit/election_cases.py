"""Election and fencing behaviour (state/election.py), as functions run against SQLite (tests/unit/test_election.py)
and a real etcd (tests/integration/test_election_etcd.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from isobox.errors import ConflictError
from isobox.state.election import Election, HeldLease
from isobox.state.kv import KV

MakeKV = Callable[[], KV]


def one_leader_at_a_time(make: MakeKV) -> None:
    a, b = make(), make()
    lease_a, lease_b = a.grant(30), b.grant(30)
    won = Election(a, "scheduler/leader").try_campaign("node-a", lease_a)
    assert won is not None and won.value == "node-a"
    assert Election(b, "scheduler/leader").try_campaign("node-b", lease_b) is None
    again = Election(a, "scheduler/leader").try_campaign("node-a", lease_a)  # the same lease: still ours
    assert again == won
    holder = Election(b, "scheduler/leader").leader()
    assert holder is not None and holder.value == "node-a" and holder.lease == lease_a
    with pytest.raises(ConflictError, match="still leads"):
        Election(b, "scheduler/leader").campaign("node-b", lease_b, timeout_s=0.3, poll_s=0.1)


def a_waiting_candidate_takes_over_when_the_leader_resigns(make: MakeKV) -> None:
    a, b = make(), make()
    election_a, election_b = Election(a, "leader"), Election(b, "leader")
    _, _, mark = election_b.observe(0)
    first = election_a.campaign("a", a.grant(30))
    results: list[str] = []
    waiter = threading.Thread(target=lambda: results.append(election_b.campaign("b", b.grant(30), timeout_s=10,
                                                                                 poll_s=0.05).value))
    waiter.start()
    time.sleep(0.3)
    assert results == []
    assert election_b.resign(first) is True  # anyone holding the proof may resign it; here the old leader's
    waiter.join(timeout=10)
    assert results == ["b"]
    assert election_a.resign(first) is False, "a stale leadership must not remove its successor's key"
    current = election_a.leader()
    assert current is not None and current.value == "b"
    now, seen, mark = election_b.observe(mark)
    assert now == current and [c.value for c in seen] == ["a", None, "b"]
    assert election_b.observe(mark)[1] == [], "each change is seen once"


def a_leader_whose_lease_expired_is_fenced(make: MakeKV) -> None:
    """A leader paused past its lease (it never renews) keeps its Leadership object; its writes are refused
    once another leads, while the new leader's writes pass."""
    a, b = make(), make()
    paused = HeldLease(a, 1.0)
    old = Election(a, "leader").campaign("a", paused.id)
    a.put("assignments/web/0", "node-a", guard=old.guard)
    successor = Election(b, "leader").campaign("b", b.grant(30), timeout_s=6, poll_s=0.1)
    assert not paused.valid(), "the paused node's own deadline passed before the successor could take over"
    with pytest.raises(ConflictError, match="fenced"):
        a.put("assignments/web/0", "node-a-again", guard=old.guard)
    with pytest.raises(ConflictError, match="fenced"):
        a.delete("assignments/web/0", guard=old.guard)
    b.put("assignments/web/0", "node-b", guard=successor.guard)
    entry = b.get("assignments/web/0")
    assert entry is not None and entry.value == "node-b"
    assert Election(a, "leader").is_leader(old) is False and Election(b, "leader").is_leader(successor) is True


def a_renewed_lease_stays_and_an_expired_one_is_lost(make: MakeKV) -> None:
    kv = make()
    held = HeldLease(kv, 1.0)
    kv.put("nodes/a", "up", lease=held.id)
    for _ in range(6):
        time.sleep(0.4)
        assert held.renew() is True
    assert kv.get("nodes/a") is not None and held.valid()
    time.sleep(2.5)
    assert held.renew() is False and not held.valid()
    assert kv.get("nodes/a") is None
