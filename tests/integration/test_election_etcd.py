"""Election, fencing and held leases (state/election.py) on a real three-member etcd, each candidate with a
client of its own (as separate nodes would have), and a leader that loses its etcd member mid-way."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from tests.fixtures import etcd as fx
from tests.fixtures.etcd import EtcdCluster
from tests.unit import election_cases

from isobox.state.election import Election, HeldLease
from isobox.state.etcd import EtcdKV

pytestmark = pytest.mark.integration
etcd_base, etcd3, etcd3_private = fx.etcd_base, fx.etcd3, fx.etcd3_private  # fixtures


@pytest.fixture
def make(etcd3: EtcdCluster) -> Iterator[election_cases.MakeKV]:
    namespace = f"/isobox-election-{secrets.token_hex(4)}/"
    opened: list[EtcdKV] = []

    def one() -> EtcdKV:
        opened.append(EtcdKV(etcd3.endpoints, namespace=namespace))
        return opened[-1]

    yield one
    for kv in opened:
        kv.close()


def test_one_leader_at_a_time(make: election_cases.MakeKV) -> None:
    election_cases.one_leader_at_a_time(make)


def test_waiting_candidate_takes_over(make: election_cases.MakeKV) -> None:
    election_cases.a_waiting_candidate_takes_over_when_the_leader_resigns(make)


def test_expired_leader_is_fenced(make: election_cases.MakeKV) -> None:
    election_cases.a_leader_whose_lease_expired_is_fenced(make)


def test_held_lease(make: election_cases.MakeKV) -> None:
    election_cases.a_renewed_lease_stays_and_an_expired_one_is_lost(make)


def test_leadership_survives_losing_the_etcd_leader(etcd3_private: EtcdCluster) -> None:
    """Killing the etcd member that leads raft (and that the candidate talks to) neither ends the isobox
    leader's lease nor lets a second candidate in: renewals and guarded writes go on through the others."""
    namespace = f"/isobox-election-{secrets.token_hex(4)}/"
    raft_leader = etcd3_private.leader()
    first = [raft_leader.client_url, *[e for e in etcd3_private.endpoints if e != raft_leader.client_url]]
    a, b = EtcdKV(first, namespace=namespace), EtcdKV(etcd3_private.endpoints[::-1], namespace=namespace)
    held = HeldLease(a, 3.0)
    won = Election(a, "leader").campaign("a", held.id)
    raft_leader.kill()
    assert held.renew() is True
    a.put("assignments/x", "a", guard=won.guard)
    assert Election(b, "leader").try_campaign("b", b.grant(30)) is None
    assert a.endpoint != raft_leader.client_url
