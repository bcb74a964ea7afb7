"""The KV protocol (state/kv.py) on etcd v3, for isobox across hosts: the same contract as SqliteKV
(tests/unit/kv_contract.py runs against both).

- Keys live under a namespace (default "/isobox/"), so one etcd cluster can serve other users too; the
  protocol's keys are relative to it.
- Compare-and-set is an etcd transaction comparing the key's mod_revision (0: "must not exist", as etcd's
  own compare of a missing key reads 0); a fenced write (`guard`) adds a compare of the guard key's
  mod_revision in the same transaction, so it is atomic with the write.
- Leases are etcd's: TTLs are whole seconds (rounded up), and etcd may raise a short one to its minimum
  (1.5 election timeouts); keepalive is one request, not a stream.
- `changes` reads etcd's history through the watch API, bounded: the store's current revision R is read
  first, then a watch from ``after + 1`` on the whole keyspace streams the events up to R and is closed.
  Each revision of etcd is made by a write with at least one event, so the event of revision R arrives and
  marks the end; the events are filtered to the namespace and prefix here. No stream outlives the call.
  (A watch on the prefix alone could not tell "nothing more happened" from "not sent yet": etcd 3.4's
  progress requests are not ordered after the backlog.) History that etcd compacted away is refused
  (ConflictError: read the prefix again), as a watch from a compacted revision is.
- Failover between endpoints is state/etcd_gateway.py's; a write whose answer was lost is retried on the next
  member, and a conditional write (expect or guard) that then fails its compare but finds the key holding
  exactly what it wrote counts as its own (the lost attempt was applied). The weak point: a writer that
  raced it and wrote the very same value would be taken for it.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import httpx

from isobox.errors import ConflictError, HostError
from isobox.state.etcd_gateway import (
    GRPC_NOT_FOUND,
    GRPC_OUT_OF_RANGE,
    EtcdRequestError,
    EtcdTLS,
    EtcdUnreachable,
    Gateway,
    b64,
    prefix_end,
    unb64,
)
from isobox.state.kv import Change, Entry, Guard

DEFAULT_NAMESPACE = "/isobox/"
_KEYSPACE_START = b"\0"  # with range_end "\0": every key (rpc.proto, RangeRequest.range_end)


class EtcdKV:
    """The KV protocol on an etcd v3 cluster (any member of ``endpoints``)."""

    def __init__(
        self,
        endpoints: str | list[str] | tuple[str, ...],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        tls: EtcdTLS | None = None,
        timeout_s: float = 2.0,
        retry_s: float = 5.0,
    ) -> None:
        self.gateway = Gateway(endpoints, tls=tls, timeout_s=timeout_s, retry_s=retry_s)
        self.namespace = namespace

    @property
    def endpoint(self) -> str:
        return self.gateway.endpoint

    def close(self) -> None:
        self.gateway.close()

    def __enter__(self) -> EtcdKV:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- calls ---------------------------------------------------------------------------------

    def _call(
        self, path: str, body: dict[str, Any], op: str, key: str = "", *, refusals: bool = False
    ) -> dict[str, Any]:
        """One call; an error answer is a HostError, or (``refusals``) an EtcdRequestError for the caller."""
        try:
            return self.gateway.call(path, body)
        except EtcdUnreachable as exc:
            raise self._unreachable(exc, op, key) from exc
        except EtcdRequestError as exc:
            if refusals:
                raise
            raise HostError(f"etcd refused it: {exc.message}", op=op, id=key) from exc

    def _unreachable(self, exc: EtcdUnreachable, op: str, key: str) -> HostError:
        every = ", ".join(self.gateway.endpoints)
        return HostError(f"no etcd endpoint answered ({every}): {exc}", op=op, id=key)

    def _key(self, key: str) -> str:
        return b64(self.namespace + key)

    def _entry(self, kv: dict[str, Any]) -> Entry:
        lease = int(kv.get("lease", 0))
        return Entry(
            key=unb64(kv["key"])[len(self.namespace):],
            value=unb64(kv.get("value", "")),
            mod_revision=int(kv["mod_revision"]),
            lease=lease or None,
        )

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        answer = self._call("kv/range", {"key": self._key(key)}, "read etcd", key)
        kvs = answer.get("kvs", [])
        return self._entry(kvs[0]) if kvs else None

    def items(self, prefix: str) -> list[Entry]:
        start = (self.namespace + prefix).encode()
        body = {"key": b64(start), "range_end": b64(prefix_end(start))}
        answer = self._call("kv/range", body, "list etcd keys", prefix)
        return [self._entry(kv) for kv in answer.get("kvs", [])]

    def revision(self) -> int:
        answer = self._call("kv/range", {"key": self._key(""), "count_only": True}, "read etcd revision")
        return int(answer["header"]["revision"])

    # ---- writes --------------------------------------------------------------------------------

    def put(
        self, key: str, value: str, *, expect: int | None = None, lease: int | None = None, guard: Guard | None = None
    ) -> int:
        request: dict[str, Any] = {"key": self._key(key), "value": b64(value)}
        if lease is not None:
            request["lease"] = str(lease)
        try:
            if expect is None and guard is None:
                answer = self._call("kv/put", request, "write etcd", key, refusals=True)
                return int(answer["header"]["revision"])
            return self._txn(key, {"request_put": request}, expect, guard, value)
        except EtcdRequestError as exc:
            if exc.code == GRPC_NOT_FOUND and lease is not None:
                raise ConflictError(f"lease {lease} expired", op="write", id=key) from exc
            raise HostError(f"etcd refused the write: {exc.message}", op="write etcd", id=key) from exc

    def delete(self, key: str, *, expect: int | None = None, guard: Guard | None = None) -> bool:
        request = {"key": self._key(key)}
        try:
            if expect is None and guard is None:
                answer = self._call("kv/deleterange", request, "delete from etcd", key, refusals=True)
                return int(answer.get("deleted", 0)) > 0
            return self._txn(key, {"request_delete_range": request}, expect, guard, None) > 0
        except EtcdRequestError as exc:
            raise HostError(f"etcd refused the delete: {exc.message}", op="delete from etcd", id=key) from exc

    def _txn(self, key: str, operation: dict[str, Any], expect: int | None, guard: Guard | None,
             value: str | None) -> int:
        """One transaction: the compares, the operation on success, a read of the key and guard on failure.
        Returns the new revision (put) or the number of keys deleted (delete)."""
        compares = []
        if guard is not None:
            compares.append(_mod_equal(self._key(guard.key), guard.mod_revision))
        if expect is not None:
            compares.append(_mod_equal(self._key(key), expect))
        reads = [{"request_range": {"key": self._key(k)}} for k in (key, *([guard.key] if guard else []))]
        body = {"compare": compares, "success": [operation], "failure": reads}
        try:
            answer, retried = self.gateway.call_reporting("kv/txn", body)
        except EtcdUnreachable as exc:
            raise self._unreachable(exc, "write etcd", key) from exc
        if retried and not answer.get("succeeded"):
            applied = _applied_before(answer, value)
            if applied is not None:
                return applied
        return self._txn_result(key, answer, expect, guard)

    def _txn_result(self, key: str, answer: dict[str, Any], expect: int | None, guard: Guard | None) -> int:
        if answer.get("succeeded"):
            return _txn_value(answer)
        ranges = _ranges(answer)
        if guard is not None:
            kvs = ranges[1] if len(ranges) > 1 else []
            found = int(kvs[0]["mod_revision"]) if kvs else 0
            if found != guard.mod_revision:
                raise ConflictError(
                    f"fenced: {guard.key} is at revision {found or 'none'}, not {guard.mod_revision} (the writer "
                    "lost its lease or its leadership)", op="write", id=key)
        kvs = ranges[0] if ranges else []
        found_text = kvs[0]["mod_revision"] if kvs else "none"
        raise ConflictError(f"{key} changed meanwhile (revision {found_text}, expected {expect})", op="write", id=key)

    # ---- changes -------------------------------------------------------------------------------

    def changes(self, prefix: str, after: int) -> list[Change]:
        upto = self.revision()
        if upto <= after:
            return []
        wanted = (self.namespace + prefix).encode()
        seen: dict[int, list[Change]] = {}
        start = after + 1
        for _attempt in range(len(self.gateway.endpoints) + 1):
            try:
                start = self._watch_until(start, upto, wanted, seen)
                break
            except httpx.TransportError:
                continue  # the member went away mid-stream: resume on the next from where it stopped
            except EtcdUnreachable as exc:
                raise self._unreachable(exc, "watch etcd", prefix) from exc
        else:
            raise HostError(f"the watch of {prefix!r} kept failing", op="watch etcd", id=prefix)
        return [change for revision in sorted(seen) for change in seen[revision]]

    def _watch_until(self, start: int, upto: int, wanted: bytes, seen: dict[int, list[Change]]) -> int:
        create = {"key": b64(_KEYSPACE_START), "range_end": b64(_KEYSPACE_START), "start_revision": str(start)}
        with self.gateway.stream("watch", {"create_request": create}) as messages:
            for message in messages:
                if message.get("canceled") or int(message.get("compact_revision", 0)):
                    raise self._compacted(message, start, wanted)
                for event in message.get("events", []):
                    kv = event["kv"]
                    revision = int(kv["mod_revision"])
                    start = max(start, revision + 1)
                    raw = base64.b64decode(kv["key"])
                    if revision <= upto and raw.startswith(wanted):
                        value = None if event.get("type") == "DELETE" else unb64(kv.get("value", ""))
                        change = Change(raw.decode()[len(self.namespace):], revision, value)
                        if change not in seen.setdefault(revision, []):
                            seen[revision].append(change)
                if start > upto:
                    return start
        raise httpx.ReadError("the watch ended before reaching the current revision")

    def _compacted(self, message: dict[str, Any], start: int, wanted: bytes) -> ConflictError:
        oldest = int(message.get("compact_revision", 0))
        reason = f"; {message['cancel_reason']}" if message.get("cancel_reason") else ""
        return ConflictError(
            f"changes from revision {start} on are no longer kept (compacted up to {oldest}{reason}): "
            f"read {wanted.decode()!r} again", op="watch etcd", id=wanted.decode())

    # ---- leases --------------------------------------------------------------------------------

    def grant(self, ttl_s: float) -> int:
        answer = self._call("lease/grant", {"TTL": str(max(1, math.ceil(ttl_s)))}, "grant etcd lease")
        return int(answer["ID"])

    def keepalive(self, lease: int) -> bool:
        try:
            answer = self._call("lease/keepalive", {"ID": str(lease)}, "renew etcd lease", str(lease), refusals=True)
        except EtcdRequestError as exc:
            if exc.code == GRPC_NOT_FOUND:
                return False
            raise HostError(f"etcd refused to renew: {exc.message}", op="renew etcd lease", id=str(lease)) from exc
        return int(answer.get("TTL", 0)) > 0

    def revoke(self, lease: int) -> None:
        try:
            self._call("lease/revoke", {"ID": str(lease)}, "revoke etcd lease", str(lease), refusals=True)
        except EtcdRequestError as exc:
            if exc.code not in (GRPC_NOT_FOUND, GRPC_OUT_OF_RANGE):
                raise HostError(f"etcd refused the revoke: {exc.message}", op="revoke etcd lease",
                                id=str(lease)) from exc


def _applied_before(answer: dict[str, Any], value: str | None) -> int | None:
    """After an attempt whose answer was lost, a failed compare while the key holds exactly what this write
    leaves (its value, or its absence for a delete) means the lost attempt was applied: its result."""
    current = _ranges(answer)[0]
    if value is None and not current:
        return 1
    if value is not None and current and unb64(current[0].get("value", "")) == value:
        return int(current[0]["mod_revision"])
    return None


def _mod_equal(key: str, revision: int) -> dict[str, Any]:
    return {"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def _ranges(answer: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [r.get("response_range", {}).get("kvs", []) for r in answer.get("responses", [])]


def _txn_value(answer: dict[str, Any]) -> int:
    """A successful transaction's result: the put's revision, or how many keys the delete removed."""
    response = answer.get("responses", [{}])[0]
    if "response_delete_range" in response:
        return int(response["response_delete_range"].get("deleted", 0))
    return int(answer["header"]["revision"])
