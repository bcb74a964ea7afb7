"""Leader election, held leases and fencing, on any KV store (state/kv.py): the pieces the cluster's scheduler
(one leader) and node agents (one lease each) are built from.

- Election: a key that at most one candidate holds, created with compare-and-set ("must not exist") and bound
  to the candidate's lease, so it goes when the leader resigns or stops renewing. Others watch it and try again
  when it is gone. What a leader writes carries a `Guard` on its key's revision (`Leadership.guard`).
- Fencing: a leader that was paused (SIGSTOP, a long GC, a VM migration) or cut off may still believe it leads
  after its lease expired and another took over. Jepsen's analysis of etcd 3.4 shows that etcd's locks alone
  do not prevent its stale writes; a guarded write compares the leader key's revision in the same
  transaction as the write, so the store itself refuses them.
- HeldLease: a node must also stop acting on its own once its lease may have expired (its replicas must stop
  before the scheduler starts them elsewhere). Its local deadline is the time *before* sending the last
  successful renewal plus the TTL: etcd counts the TTL from when it handled the renewal, which is later, so
  the node always gives up first. An unreachable store does not extend the deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from isobox.errors import ConflictError, HostError
from isobox.state.kv import KV, Change, Entry, Guard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Leadership:
    """Proof of having won: the leader key as written (its revision fences the leader's writes)."""

    key: str
    value: str
    lease: int
    mod_revision: int

    @property
    def guard(self) -> Guard:
        return Guard(self.key, self.mod_revision)


class Election:
    """One leader at a time for ``key``."""

    def __init__(self, kv: KV, key: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.kv = kv
        self.key = key
        self._sleep = sleep

    def try_campaign(self, value: str, lease: int) -> Leadership | None:
        """Lead now if nobody does (or if this lease already holds the key); None if another leads.
        ConflictError if ``lease`` has expired."""
        try:
            revision = self.kv.put(self.key, value, expect=0, lease=lease)
        except ConflictError as exc:
            if "expired" in exc.message:
                raise
            current = self.kv.get(self.key)
            if current is not None and current.lease == lease:
                return Leadership(self.key, current.value, lease, current.mod_revision)
            return None
        return Leadership(self.key, value, lease, revision)

    def campaign(self, value: str, lease: int, *, timeout_s: float | None = None, poll_s: float = 0.25) -> Leadership:
        """Wait until this candidate leads (bounded by ``timeout_s``, else ConflictError naming the leader)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            won = self.try_campaign(value, lease)
            if won is not None:
                log.info("leading %s as %s", self.key, value)
                return won
            if deadline is not None and time.monotonic() >= deadline:
                holder = self.leader()
                name = holder.value if holder is not None else "nobody"
                raise ConflictError(f"{name} still leads after {timeout_s} s", op="campaign", id=self.key)
            self._sleep(poll_s)

    def leader(self) -> Entry | None:
        return self.kv.get(self.key)

    def observe(self, after: int) -> tuple[Entry | None, list[Change], int]:
        """The leader now, every change of the leader key after revision ``after`` (who took over, who left:
        None), and the revision to pass next time. A follower polls this to react to each change of leader."""
        mark = max(self.kv.revision(), after)
        changes = [c for c in self.kv.changes(self.key, after) if c.key == self.key]
        if changes:
            mark = max(mark, changes[-1].revision)
        return self.kv.get(self.key), changes, mark

    def is_leader(self, leadership: Leadership) -> bool:
        current = self.kv.get(self.key)
        return current is not None and current.mod_revision == leadership.mod_revision

    def resign(self, leadership: Leadership) -> bool:
        """Give up leading (only if still leading with this key: a successor's key is left alone)."""
        try:
            return self.kv.delete(self.key, expect=leadership.mod_revision)
        except ConflictError:
            return False


class HeldLease:
    """A lease this process keeps alive, with the local deadline after which it must act as if it had lost it."""

    def __init__(self, kv: KV, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.kv = kv
        self.ttl_s = ttl_s
        self._clock = clock
        sent = clock()
        self.id = kv.grant(ttl_s)
        self.valid_until = sent + ttl_s

    def renew(self) -> bool:
        """Renew once; whether the lease is (still) valid. Lost for good when the store says it expired."""
        sent = self._clock()
        try:
            alive = self.kv.keepalive(self.id)
        except HostError as exc:
            log.warning("cannot renew lease %s: %s", self.id, exc)
            return self.valid()
        if alive:
            self.valid_until = max(self.valid_until, sent + self.ttl_s)
        else:
            self.valid_until = float("-inf")
        return alive

    def valid(self) -> bool:
        return self._clock() < self.valid_until

    def remaining_s(self) -> float:
        return max(0.0, self.valid_until - self._clock())

    def revoke(self) -> None:
        self.valid_until = float("-inf")
        self.kv.revoke(self.id)
