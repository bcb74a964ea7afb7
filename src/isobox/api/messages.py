"""A request as handlers see it, and the replies they return.

Handlers read the body themselves (``await request.json()`` or ``request.body.chunks()``): a load
streams its tar to a file while a create reads a small JSON document, and the server drains what a
handler left unread. A reply is a whole body (Reply), a body produced over time (Streamed: progress,
logs, a wait's result), or the raw connection (Hijack: attach and exec after HTTP 101).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from isobox.api.errors import ApiError
from isobox.errors import InvalidArgumentError

JSON = "application/json"
MAX_BODY_BYTES = 4 * 1024 * 1024  # a container create with every field is a few KiB; images/load streams
_FALSE = ("", "0", "no", "false", "none")  # Docker's httputils.BoolValue


class Body:
    """The request body, pulled from the connection as the handler reads it."""

    def __init__(self, pull: Callable[[], Awaitable[bytes | None]], declared_bytes: int | None) -> None:
        self._pull = pull
        self.declared_bytes = declared_bytes
        self.done = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.done:
            data = await self._pull()
            if data is None:
                self.done = True
                return
            yield data

    async def read(self, limit_bytes: int = MAX_BODY_BYTES) -> bytes:
        if self.declared_bytes is not None and self.declared_bytes > limit_bytes:
            raise InvalidArgumentError(
                f"request body of {self.declared_bytes} bytes is larger than the limit of {limit_bytes}",
                op="read request",
            )
        data = bytearray()
        async for chunk in self.chunks():
            data += chunk
            if len(data) > limit_bytes:
                raise InvalidArgumentError(f"request body is larger than the limit of {limit_bytes} bytes",
                                           op="read request")
        return bytes(data)


@dataclass
class Request:
    method: str
    path: str  # without the /v1.NN prefix
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: Body
    version: tuple[int, int]
    params: dict[str, str] = field(default_factory=dict)
    gone: threading.Event = field(default_factory=threading.Event)  # the client went away (set by the server)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.arg(name)
        if value is None:
            return default
        return value.strip().lower() not in _FALSE

    def int_arg(self, name: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise InvalidArgumentError(f"query parameter {name}={value!r} is not an integer",
                                       op=f"{self.method} {self.path}") from None
        if minimum is not None and number < minimum:
            raise InvalidArgumentError(f"query parameter {name}={number} is below {minimum}",
                                       op=f"{self.method} {self.path}")
        return number

    async def json(self, *, required: bool = True) -> dict[str, Any]:
        data = await self.body.read()
        if not data.strip():
            if required:
                raise InvalidArgumentError("a JSON body is required", op=f"{self.method} {self.path}")
            return {}
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidArgumentError(f"malformed JSON body: {exc}", op=f"{self.method} {self.path}") from exc
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            raise InvalidArgumentError(f"the JSON body must be an object, not {type(value).__name__}",
                                       op=f"{self.method} {self.path}")
        return value


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(value: object, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, json.dumps(value).encode(), JSON, headers)


def empty(status: int = 204) -> Reply:
    return Reply(status, b"", "", ())


@dataclass(frozen=True)
class Streamed:
    """Headers at once, then each chunk as it comes (HTTP/1.1 chunked encoding)."""

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Raw:
    """The connection after a hijack: bytes the server had already read past the request, then the socket."""

    leftover: bytes
    read: Callable[[int], Awaitable[bytes]]
    write: Callable[[bytes], Awaitable[None]]
    close_write: Callable[[], None]


@dataclass(frozen=True)
class Hijack:
    """Docker's attach and exec start: answer 101 (Upgrade: tcp) when the client asked to upgrade, else 200
    with a raw-stream content type, then hand the raw connection to ``run``, which owns it to the end."""

    run: Callable[[Raw], Awaitable[None]]
    content_type: str = "application/vnd.docker.raw-stream"


Answer = Reply | Streamed | Hijack


def require_type(value: object, kind: type | tuple[type, ...], what: str) -> Any:
    """A JSON field of the expected type (bool is no int here), else a 400 naming the field."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds).replace("dict", "object").replace("list", "array")
        raise InvalidArgumentError(f"{what} must be {names}, not {json.dumps(value)[:80]}", op="read request")
    return value


__all__ = ["JSON", "MAX_BODY_BYTES", "Answer", "ApiError", "Body", "Hijack", "Raw", "Reply", "Request", "Streamed",
           "empty", "json_reply", "require_type"]
