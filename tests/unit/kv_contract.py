"""The behaviour every KV store (state/kv.py's protocol) must have, as functions a test module runs against
one implementation: SQLite here (tests/unit/test_kv.py), etcd across hosts."""

from __future__ import annotations

import threading
import time

import pytest

from isobox.errors import ConflictError
from isobox.state.kv import KV, Guard


def revisions_grow_and_compare_and_set_refuses_stale_writes(kv: KV) -> None:
    start = kv.revision()
    first = kv.put("services/a", '{"v": 1}', expect=0)  # 0: must not exist yet
    assert first > start and kv.get("services/a") is not None
    with pytest.raises(ConflictError, match="changed meanwhile"):
        kv.put("services/a", '{"v": 2}', expect=0)
    second = kv.put("services/a", '{"v": 2}', expect=first)
    assert second > first
    with pytest.raises(ConflictError):
        kv.put("services/a", '{"v": 3}', expect=first)
    entry = kv.get("services/a")
    assert entry is not None and entry.value == '{"v": 2}' and entry.mod_revision == second
    with pytest.raises(ConflictError):
        kv.delete("services/a", expect=first)
    assert kv.delete("services/a", expect=second) is True
    assert kv.get("services/a") is None and kv.delete("services/a") is False


def items_are_by_prefix_in_key_order(kv: KV) -> None:
    for key in ("assignments/s1/2", "assignments/s1/0", "assignments/s10/0", "services/s1"):
        kv.put(key, "{}")
    assert [e.key for e in kv.items("assignments/s1/")] == ["assignments/s1/0", "assignments/s1/2"]
    assert len(kv.items("")) == 4


def changes_tell_a_watcher_what_happened(kv: KV) -> None:
    mark = kv.revision()
    kv.put("services/w", "1")
    kv.put("nodes/x", "n")
    kv.delete("services/w")
    seen = kv.changes("services/", mark)
    assert [(c.key, c.value) for c in seen] == [("services/w", "1"), ("services/w", None)]
    assert seen[0].revision < seen[1].revision
    assert kv.changes("services/", seen[-1].revision) == []


def keys_of_an_expired_lease_go(kv: KV) -> None:
    lease = kv.grant(1.0)
    kv.put("nodes/a", "alive", lease=lease)
    assert kv.keepalive(lease) is True
    assert kv.get("nodes/a") is not None
    time.sleep(2.2)
    assert kv.get("nodes/a") is None, "the lease expired: its key must go"
    assert kv.keepalive(lease) is False
    with pytest.raises(ConflictError, match="expired"):
        kv.put("nodes/a", "again", lease=lease)
    other = kv.grant(30.0)
    kv.put("nodes/b", "x", lease=other)
    kv.revoke(other)
    assert kv.get("nodes/b") is None


def only_one_of_racing_writers_wins(kv: KV, make: object) -> None:
    """Twelve writers (each with its own connection, as separate processes would have) create one key."""
    winners: list[int] = []
    barrier = threading.Barrier(12)

    def one() -> None:
        store = make()  # type: ignore[operator]
        barrier.wait()
        try:
            winners.append(store.put("leader", "me", expect=0))
        except ConflictError:
            pass

    threads = [threading.Thread(target=one) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def guarded_writes_stop_when_the_guard_goes(kv: KV) -> None:
    """A leader's writes carry its leader key's revision: once the key went with the lease (or another
    leader holds it), the old leader's writes are refused, and a new leader's are not."""
    lease = kv.grant(30.0)
    held = kv.put("leader", "me", expect=0, lease=lease)
    guard = Guard("leader", held)
    kv.put("assignments/s/0", "a", guard=guard)
    assert kv.delete("assignments/s/0", guard=guard) is True
    kv.put("assignments/s/0", "a", guard=guard, expect=0)
    kv.revoke(lease)
    with pytest.raises(ConflictError, match="fenced"):
        kv.put("assignments/s/0", "b", guard=guard)
    with pytest.raises(ConflictError, match="fenced"):
        kv.delete("assignments/s/0", guard=guard)
    other = kv.put("leader", "you", expect=0)
    with pytest.raises(ConflictError, match="fenced"):
        kv.put("assignments/s/0", "c", guard=guard)
    entry = kv.get("assignments/s/0")
    assert entry is not None and entry.value == "a"
    with pytest.raises(ConflictError, match="changed meanwhile"):
        kv.put("assignments/s/0", "d", guard=Guard("leader", other), expect=0)
    kv.put("assignments/s/0", "d", guard=Guard("leader", other), expect=entry.mod_revision)
    assert kv.delete("nothing/here", guard=Guard("leader", other)) is False
