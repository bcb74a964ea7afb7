"""The etcd store (state/etcd.py) meets the KV contract (tests/unit/kv_contract.py) on a real etcd of one and of
three members, fails over when the member it uses is killed, and names every endpoint when none answers."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures import etcd as fx
from tests.fixtures.etcd import EtcdCluster, free_port
from tests.unit import kv_contract

from isobox.errors import ConflictError, HostError
from isobox.state.etcd import EtcdKV
from isobox.state.etcd_gateway import EtcdTLS

pytestmark = pytest.mark.integration
etcd_base, etcd1, etcd3, etcd3_private = fx.etcd_base, fx.etcd1, fx.etcd3, fx.etcd3_private  # fixtures


@pytest.fixture(params=["etcd1", "etcd3"])
def cluster(request: pytest.FixtureRequest) -> EtcdCluster:
    found: EtcdCluster = request.getfixturevalue(request.param)
    return found


@pytest.fixture
def namespace() -> str:
    return f"/isobox-test-{secrets.token_hex(4)}/"


@pytest.fixture
def kv(cluster: EtcdCluster, namespace: str) -> Iterator[EtcdKV]:
    store = EtcdKV(cluster.endpoints, namespace=namespace)
    yield store
    store.close()


def test_revisions_and_compare_and_set(kv: EtcdKV) -> None:
    kv_contract.revisions_grow_and_compare_and_set_refuses_stale_writes(kv)


def test_items_by_prefix(kv: EtcdKV) -> None:
    kv_contract.items_are_by_prefix_in_key_order(kv)


def test_changes(kv: EtcdKV) -> None:
    kv_contract.changes_tell_a_watcher_what_happened(kv)


def test_leases(kv: EtcdKV) -> None:
    kv_contract.keys_of_an_expired_lease_go(kv)


def test_racing_writers(kv: EtcdKV, cluster: EtcdCluster, namespace: str) -> None:
    kv_contract.only_one_of_racing_writers_wins(kv, lambda: EtcdKV(cluster.endpoints, namespace=namespace))


def test_guarded_writes(kv: EtcdKV) -> None:
    kv_contract.guarded_writes_stop_when_the_guard_goes(kv)


def test_namespaces_do_not_see_each_other(cluster: EtcdCluster) -> None:
    one, two = (EtcdKV(cluster.endpoints, namespace=f"/ns-{secrets.token_hex(3)}/") for _ in range(2))
    mark = one.revision()
    one.put("services/a", "1")
    two.put("services/a", "2")
    assert [e.value for e in one.items("")] == ["1"] and [e.value for e in two.items("")] == ["2"]
    assert [c.value for c in one.changes("", mark)] == ["1"]


def test_changes_of_a_key_deleted_by_lease_expiry(kv: EtcdKV) -> None:
    """A node's key going with its lease is an event a scheduler's watch must see."""
    lease = kv.grant(1)
    mark = kv.put("nodes/n1", "up", lease=lease)
    deadline = time.monotonic() + 5
    while kv.get("nodes/n1") is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [(c.key, c.value) for c in kv.changes("nodes/", mark)] == [("nodes/n1", None)]


def test_compacted_history_is_refused(etcd1: EtcdCluster, namespace: str) -> None:
    import httpx

    kv = EtcdKV(etcd1.endpoints, namespace=namespace)
    first = kv.put("a", "1")
    kv.put("a", "2")
    now = kv.put("a", "3")
    httpx.post(f"{etcd1.endpoints[0]}/v3/kv/compaction", json={"revision": str(now - 1)}, timeout=5).raise_for_status()
    with pytest.raises(ConflictError, match="no longer kept"):
        kv.changes("", first - 1)
    assert [c.value for c in kv.changes("", now - 1)] == ["3"]


def test_no_endpoint_answering_names_them_all() -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    kv = EtcdKV(dead, timeout_s=1, retry_s=1)
    started = time.monotonic()
    with pytest.raises(HostError) as caught:
        kv.get("x")
    assert all(url in str(caught.value) for url in dead)
    assert time.monotonic() - started < 5


def test_a_dead_endpoint_is_skipped(etcd1: EtcdCluster, namespace: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    kv = EtcdKV([dead, *etcd1.endpoints], namespace=namespace)
    kv.put("k", "v")
    assert kv.endpoint == etcd1.endpoints[0]
    assert kv.get("k") is not None


def test_failover_when_the_member_in_use_is_killed(etcd3_private: EtcdCluster, namespace: str) -> None:
    """A writer loops on compare-and-set increments while the member it talks to is SIGKILLed mid-way: every
    increment lands exactly once, on the members left, and changes() still sees them all in order."""
    kv = EtcdKV(etcd3_private.endpoints, namespace=namespace)
    mark = kv.revision()
    revision = kv.put("counter", "0", expect=0)
    killed: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        nonlocal revision
        try:
            for count in range(1, 61):
                revision = kv.put("counter", str(count), expect=revision)
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.2)
    in_use = etcd3_private.member(kv.endpoint)
    in_use.kill()
    killed.append(in_use.client_url)
    writer.join(timeout=60)
    assert not errors, errors
    entry = kv.get("counter")
    assert entry is not None and entry.value == "60"
    assert kv.endpoint not in killed
    values = [c.value for c in kv.changes("counter", mark)]
    assert values == [str(n) for n in range(61)]


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    """An etcd that accepts only HTTPS clients with a certificate of its CA: isobox with the CA, its certificate
    and key reaches it; without its certificate, or trusting another CA, it does not."""
    tls = fx.make_tls(tmp_path / "pki")
    (tmp_path / "etcd").mkdir()
    cluster = fx.start_cluster(1, tmp_path / "etcd", tag="tls", tls=tls)
    try:
        good = EtcdTLS(ca_cert=tls.ca_cert, client_cert=tls.client_cert, client_key=tls.client_key)
        with EtcdKV(cluster.endpoints, tls=good) as kv:
            kv_contract.revisions_grow_and_compare_and_set_refuses_stale_writes(kv)
        for bad in (EtcdTLS(ca_cert=tls.ca_cert), EtcdTLS(client_cert=tls.client_cert, client_key=tls.client_key)):
            with EtcdKV(cluster.endpoints, tls=bad, retry_s=0.5) as kv, pytest.raises(HostError):
                kv.get("x")
    finally:
        cluster.stop()
