"""Talking to etcd v3 through its JSON gateway (the grpc-gateway every etcd member serves on its client URLs
under /v3/), over httpx: several endpoints, failover between them, TLS.

Why the gateway and httpx (docs/cluster.md says more): isobox is synchronous and already depends on httpx; the
gateway needs no protobuf or gRPC stack (the `etcd3` package is unmaintained and breaks on current protobuf),
and a request per call keeps every operation bounded in time, which a CLI needs. The read timeout (2 s) is
short on purpose: a write forwarded to a leader that just died is lost, and is only retried once it runs out.

Failover. Calls go to the endpoint that answered last; one that cannot be reached (connection refused or timed
out, the connection dropped) or that answers "unavailable" (a member without a leader, a partitioned one) is
skipped and the next is tried, round after round for a few seconds (a leader election); when none answers, the
error names every endpoint and why.
A write whose answer was lost may or may not have been applied; `call` says so (`Outcome.sent`), and the KV layer
decides what a retry means for it (state/etcd.py).

Wire format (etcd's api/etcdserverpb/rpc.proto through grpc-gateway): keys and values are base64, 64-bit
integers are JSON strings, fields at their zero value are left out, errors are {"error", "code", "message"}
with gRPC status codes.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from isobox.errors import HostError, InvalidArgumentError

log = logging.getLogger(__name__)

# gRPC status codes etcd answers with (google.golang.org/grpc/codes).
GRPC_NOT_FOUND = 5
GRPC_FAILED_PRECONDITION = 9
GRPC_OUT_OF_RANGE = 11
GRPC_UNAVAILABLE = 14
GRPC_DEADLINE_EXCEEDED = 4


@dataclass(frozen=True)
class EtcdTLS:
    """TLS towards etcd members started with --cert-file/--key-file (and --client-cert-auth)."""

    ca_cert: Path | None = None  # None: the system's trust store
    client_cert: Path | None = None
    client_key: Path | None = None


class EtcdRequestError(Exception):
    """etcd answered with an error (not a transport failure): its gRPC code and message."""

    def __init__(self, code: int, message: str, path: str) -> None:
        self.code = code
        self.message = message
        self.path = path
        super().__init__(f"{path}: {message} (code {code})")


class EtcdUnreachable(Exception):
    """No endpoint answered; ``sent``: some attempt may have reached a member before failing."""

    def __init__(self, failures: list[str], sent: bool) -> None:
        self.failures = failures
        self.sent = sent
        super().__init__("; ".join(failures))


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with ``prefix`` (etcd's clientv3.GetPrefixRangeEnd):
    the prefix with its last byte below 0xff incremented; b"\\0" (to the end of the keyspace) if none is."""
    raw = bytearray(prefix)
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\0"


def parse_endpoints(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """'http://a:2379,https://b:2379' (or a list) as normalised base URLs; bad ones are refused by name."""
    items = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    if not items:
        raise InvalidArgumentError("no etcd endpoint given (use http://HOST:PORT[,…])", op="parse etcd endpoints")
    found = []
    for item in items:
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
            raise InvalidArgumentError(
                f"invalid etcd endpoint {item!r}: use http://HOST:PORT or https://HOST:PORT",
                op="parse etcd endpoints",
            )
        found.append(f"{parts.scheme}://{parts.netloc}")
    return tuple(dict.fromkeys(found))


class Gateway:
    """JSON calls to one etcd cluster through any of its members."""

    def __init__(
        self,
        endpoints: str | list[str] | tuple[str, ...],
        *,
        tls: EtcdTLS | None = None,
        timeout_s: float = 2.0,
        connect_timeout_s: float = 1.0,
        retry_s: float = 5.0,
    ) -> None:
        self.endpoints = parse_endpoints(endpoints)
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._current = 0
        self._client = httpx.Client(
            verify=_ssl_context(tls) if tls is not None else True,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_keepalive_connections=4),
        )

    @property
    def endpoint(self) -> str:
        """The endpoint calls go to first (the one that answered last)."""
        return self.endpoints[self._current]

    def close(self) -> None:
        self._client.close()

    def _order(self) -> list[int]:
        count = len(self.endpoints)
        return [(self._current + i) % count for i in range(count)]

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call_reporting(path, body)[0]

    def call_reporting(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """`call`, also saying whether an earlier attempt may have reached a member before failing (a write
        may then have been applied before the attempt that answered).

        POST /v3/<path>; the first JSON object of the answer (a streaming RPC such as lease keepalive
        answers one per line: the first is the reply to our single request). Endpoints are tried in turn,
        round after round, until one answers or ``retry_s`` has passed (a leader election takes about two
        election timeouts, during which members answer nothing)."""
        failures: list[str] = []
        sent = False
        deadline = time.monotonic() + self.retry_s
        pause_s = 0.05
        while True:
            for index in self._order():
                answer, failure, maybe_sent = self._try(index, path, body)
                sent = sent or maybe_sent
                if answer is not None:
                    self._current = index
                    error = _error(answer, path)
                    if error is not None:
                        raise error
                    result = answer.get("result", answer)
                    return (result if isinstance(result, dict) else {}), sent
                failures.append(failure)
            if time.monotonic() + pause_s > deadline:
                break
            time.sleep(pause_s)
            pause_s = min(pause_s * 2, 0.5)
        latest = list(dict.fromkeys(reversed(failures)))[: len(self.endpoints)]
        raise EtcdUnreachable(sorted(latest), sent)

    def _try(self, index: int, path: str, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str, bool]:
        """One attempt: (answer, "", sent) or (None, why it failed, whether the request may have arrived)."""
        base = self.endpoints[index]
        try:
            with self._client.stream("POST", f"{base}/v3/{path}", json=body) as response:
                text = _first_line(response)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return None, f"{base}: {_reason(exc)}", False
        except httpx.TransportError as exc:
            return None, f"{base}: {_reason(exc)}", True
        answer = _decode(text, base, path)
        error = _error(answer, path)
        if error is not None and error.code in (GRPC_UNAVAILABLE, GRPC_DEADLINE_EXCEEDED):
            # A member without a leader or cut off from the others; a write may still be committed later.
            return None, f"{base}: {error.message}", True
        return answer, "", False

    @contextmanager
    def stream(self, path: str, body: dict[str, Any]) -> Iterator[Iterator[dict[str, Any]]]:
        """A streaming call (watch) on the first endpoint that accepts it: yields its JSON messages.
        Failures while reading raise httpx.TransportError; the caller restarts where it was."""
        failures: list[str] = []
        for index in self._order():
            base = self.endpoints[index]
            request = self._client.build_request("POST", f"{base}/v3/{path}", json=body)
            try:
                response = self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failures.append(f"{base}: {_reason(exc)}")
                continue
            self._current = index
            try:
                yield _messages(response, base, path)
            finally:
                response.close()
            return
        raise EtcdUnreachable(failures, sent=False)


def _ssl_context(tls: EtcdTLS) -> ssl.SSLContext:
    """The CA to trust (else the system's) and the client certificate, as httpx takes them (an SSLContext)."""
    if tls.client_cert is not None and tls.client_key is None:
        raise InvalidArgumentError("an etcd client certificate needs its key", op="connect to etcd")
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_cert) if tls.ca_cert is not None else None)
        if tls.client_cert is not None and tls.client_key is not None:
            context.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    except (OSError, ssl.SSLError) as exc:
        path = str(tls.client_cert or tls.ca_cert or "")
        raise InvalidArgumentError(f"cannot load the etcd TLS files: {exc}", op="connect to etcd", path=path) from exc
    return context


def _first_line(response: httpx.Response) -> str:
    for line in response.iter_lines():
        if line.strip():
            return line
    return "{}"


def _messages(response: httpx.Response, base: str, path: str) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if not line.strip():
            continue
        answer = _decode(line, base, path)
        error = _error(answer, path)
        if error is not None:
            raise error
        result = answer.get("result", answer)
        yield result if isinstance(result, dict) else {}


def _decode(text: str, base: str, path: str) -> dict[str, Any]:
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise HostError(f"{base} answered {path} with something that is not etcd's JSON: {text[:200]!r}",
                        op="talk to etcd", id=base) from exc
    return answer if isinstance(answer, dict) else {}


def _error(answer: dict[str, Any], path: str) -> EtcdRequestError | None:
    inner = answer.get("error", answer if "code" in answer and "result" not in answer else None)
    if inner is None:
        return None
    if isinstance(inner, dict):  # streaming RPCs wrap it: {"error": {"grpc_code": …, "message": …}}
        code = int(inner.get("grpc_code") or inner.get("code") or 2)
        return EtcdRequestError(code, str(inner.get("message", "")), path)
    return EtcdRequestError(int(answer.get("code") or 2), str(answer.get("message") or inner), path)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:160]
