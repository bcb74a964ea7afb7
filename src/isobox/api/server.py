"""The HTTP server: the connection loop, asyncio streams with h11 (where it listens: api/listeners.py).

Why not an ASGI framework: Docker's attach and exec start answer ``101 Switching Protocols`` (or 200 on
old clients) and then use the bare connection both ways, with half-close for the end of stdin. ASGI has no
way to hand the socket to the application. h11 is a sans-I/O HTTP/1.1 state machine: this loop owns the
socket, feeds h11 the bytes, and can step aside after a 101 (``Hijack``). docs/api.md says more.

One task per connection; requests on it are served one after the other (keep-alive). Handlers run the
blocking service layer through api/workers.py, never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import time
from collections.abc import Callable
from typing import Any

import h11

from isobox import __version__
from isobox.api import errors
from isobox.api.listeners import Listener
from isobox.api.messages import Answer, Body, Hijack, Raw, Reply, Request, Streamed
from isobox.api.routing import API_VERSION, Route, Router, check_version, split_version, text

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024  # request line and headers
READ_BYTES = 64 * 1024
DRAIN_BYTES = 1024 * 1024  # body left unread by a handler: read and dropped up to this, else the connection closes


def common_headers() -> list[tuple[str, str]]:
    return [
        ("Api-Version", text(API_VERSION)),
        ("Ostype", "linux"),
        ("Server", f"isobox/{__version__} (linux)"),
        ("Docker-Experimental", "false"),
    ]


class _ClientGone(Exception):
    """The peer closed the connection in the middle of a request."""


class Connection:
    """One client connection: h11's state machine over an asyncio stream pair."""

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)

    async def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.reader.read(READ_BYTES))
                continue
            return event

    async def send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def serve(self) -> None:
        try:
            while True:
                event = await self.next_event()
                if not isinstance(event, h11.Request):
                    return  # ConnectionClosed, or the peer's side is done
                if not await self.request(event):
                    return
                if self.h11.our_state is not h11.DONE or not await self.drain_body():
                    return
                self.h11.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self.refuse(exc)
        except (ConnectionError, _ClientGone, asyncio.IncompleteReadError):
            pass
        finally:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def refuse(self, exc: h11.RemoteProtocolError) -> None:
        """A request h11 could not parse: 400 (or what h11 suggests), if a response can still go out."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        reply = Reply(exc.error_status_hint, errors.body(f"malformed HTTP request: {exc}"))
        with contextlib.suppress(Exception):
            await self.send_reply(reply, head_only=False, close=True)

    async def pull_body(self) -> bytes | None:
        event = await self.next_event()
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            return None
        raise _ClientGone()

    async def drain_body(self) -> bool:
        drained = 0
        while self.h11.their_state is h11.SEND_BODY:
            chunk = await self.pull_body()
            if chunk is None:
                break
            drained += len(chunk)
            if drained > DRAIN_BYTES:
                return False
        return self.h11.their_state in (h11.DONE, h11._state.MIGHT_SWITCH_PROTOCOL)  # not re-exported by h11

    # ---- one request ----------------------------------------------------------------------------

    async def request(self, event: h11.Request) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        started = time.monotonic()
        headers = {name.decode().lower(): value.decode("latin-1") for name, value in event.headers}
        target = event.target.decode("latin-1")
        path, _, query_text = target.partition("?")
        version, bare = split_version(path)
        declared = headers.get("content-length")
        request = Request(
            method=event.method.decode(),
            path=bare,
            query=_parse_query(query_text),
            headers=headers,
            body=Body(self.pull_body, int(declared) if declared and declared.isdigit() else None),
            version=API_VERSION,
        )
        operation = f"{request.method} {bare}"
        route: Route | None = None
        try:
            request.version = check_version(version)
            route, request.params = self.server.router.match(request.method, bare)
            operation = route.name
            answer: Answer = await route.handler(self.server.app, request)
        except Exception as exc:
            docker_words = route.not_found_message(exc, request.params) if route is not None else None
            answer = self.error_reply(errors.ApiError(404, docker_words) if docker_words else exc, operation)
        keep = await self.answer(request, answer, operation)
        status = answer.status if isinstance(answer, Reply | Streamed) else 101
        log.debug("%s %s → %s in %.1f ms", request.method, target, status, (time.monotonic() - started) * 1e3)
        return keep

    def error_reply(self, exc: Exception, operation: str) -> Reply:
        status = errors.status_for(exc)
        if status == 304:
            return Reply(304, b"", "")
        message = errors.message_for(exc, operation)
        if status >= 500:
            log.warning("%s failed: %s", operation, message, exc_info=not isinstance(exc, errors.ApiError))
        return Reply(status, errors.body(message))

    async def answer(self, request: Request, answer: Answer, operation: str) -> bool:
        if isinstance(answer, Reply):
            close = request.body.declared_bytes is not None and not request.body.done and answer.status >= 400
            await self.send_reply(answer, head_only=request.method == "HEAD", close=close)
            return not close
        if isinstance(answer, Streamed):
            return await self.send_stream(request, answer, operation)
        await self.hijack(request, answer)
        return False

    async def send_reply(self, reply: Reply, *, head_only: bool, close: bool = False) -> None:
        headers = common_headers() + list(reply.headers)
        if reply.content_type:
            headers.append(("Content-Type", reply.content_type))
        if reply.status not in (204, 304):
            headers.append(("Content-Length", str(len(reply.body))))
        if close:
            headers.append(("Connection", "close"))
        await self.send(h11.Response(status_code=reply.status, headers=headers, reason=_reason(reply.status)))
        if reply.body and not head_only and reply.status not in (204, 304):
            await self.send(h11.Data(data=reply.body))
        await self.send(h11.EndOfMessage())

    async def send_stream(self, request: Request, answer: Streamed, operation: str) -> bool:
        """Headers now, chunks as they come. A client that goes away ends the stream (its producer
        stops on ``request.gone``) and the connection; the server carries on."""
        if not await self.drain_body():
            return False
        headers = [*common_headers(), *answer.headers, ("Content-Type", answer.content_type)]
        await self.send(h11.Response(status_code=answer.status, headers=headers, reason=_reason(answer.status)))
        sending = asyncio.create_task(self._stream_chunks(answer))
        watching = asyncio.create_task(self._watch_peer())
        try:
            done, _ = await asyncio.wait({sending, watching}, return_when=asyncio.FIRST_COMPLETED)
            finished = sending in done and sending.exception() is None
        finally:
            for task in (sending, watching):
                task.cancel()
            await asyncio.gather(sending, watching, return_exceptions=True)
        if not finished:
            request.gone.set()  # its producer thread stops at its next step
            failure = sending.exception() if sending in done else None
            log.debug("%s: stream ended early: %s", operation, failure or "the client went away")
        return finished

    async def _stream_chunks(self, answer: Streamed) -> None:
        async for chunk in answer.chunks:
            if chunk:
                await self.send(h11.Data(data=chunk))
        await self.send(h11.EndOfMessage())

    async def _watch_peer(self) -> None:
        """Returns when the peer closes its side; bytes it sends meanwhile are kept for the next request."""
        while True:
            data = await self.reader.read(READ_BYTES)
            if not data:
                return
            self.h11.receive_data(data)

    async def hijack(self, request: Request, answer: Hijack) -> None:
        if not await self.drain_body():
            return
        upgrade = "upgrade" in request.headers.get("connection", "").lower() and "upgrade" in request.headers
        if upgrade:
            headers = [*common_headers(), ("Content-Type", answer.content_type), ("Connection", "Upgrade"),
                       ("Upgrade", "tcp")]
            await self.send(h11.InformationalResponse(status_code=101, headers=headers))
            leftover = self.h11.trailing_data[0]
        else:
            # Clients from before API 1.?? expect a plain 200 and then the raw stream: h11 cannot step aside
            # after a final response, so this head is written by hand.
            head = ["HTTP/1.1 200 OK", *(f"{k}: {v}" for k, v in common_headers()),
                    f"Content-Type: {answer.content_type}", "", ""]
            self.writer.write("\r\n".join(head).encode())
            await self.writer.drain()
            leftover = self.h11.trailing_data[0]

        async def write(data: bytes) -> None:
            self.writer.write(data)
            await self.writer.drain()

        def close_write() -> None:
            if self.writer.can_write_eof():
                self.writer.write_eof()

        await answer.run(Raw(bytes(leftover), self.reader.read, write, close_write))


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _parse_query(text_: str) -> dict[str, list[str]]:
    from urllib.parse import parse_qs

    return parse_qs(text_, keep_blank_values=True) if text_ else {}


class Server:
    """Serves ``router``'s routes on every listener until ``stop`` is set."""

    def __init__(self, app: object, router: Router, listeners: list[Listener]) -> None:
        self.app = app
        self.router = router
        self.listeners = listeners
        self._connections: set[asyncio.Task[None]] = set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await Connection(self, reader, writer).serve()
        except asyncio.CancelledError:
            writer.close()
            raise
        except Exception:  # a bug in a handler's path must not take the server down with it
            log.exception("connection failed")
        finally:
            self._connections.discard(task)

    async def run(self, stop: asyncio.Event, ready: Callable[[], None] | None = None) -> None:
        servers: list[asyncio.base_events.Server] = []
        try:
            for listener in self.listeners:
                if listener.unix:
                    servers.append(await asyncio.start_unix_server(self._accept, sock=listener.sock))
                else:
                    servers.append(await asyncio.start_server(self._accept, sock=listener.sock, ssl=listener.tls))
                log.info("listening on %s", listener.address)
            if ready is not None:
                ready()
            await stop.wait()
        finally:
            for server in servers:
                server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)


# ---- listeners ----------------------------------------------------------------------------------
