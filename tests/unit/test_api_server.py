"""The connection loop and listeners with a router of test handlers, over a real unix socket: keep-alive,
body limits, malformed requests, streams whose client goes away, the hijack after HTTP 101, and the
socket rules (mode, stale files, a live server, TCP without TLS)."""

from __future__ import annotations

import asyncio
import socket
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from isobox.api import listeners, server
from isobox.api.messages import Hijack, Raw, Reply, Request, Streamed, json_reply
from isobox.api.routing import Router, RouteTable
from isobox.errors import ConflictError, InvalidArgumentError

table = RouteTable()
stream_gone = threading.Event()


@table.post("/echo", "echo")
async def echo(app: object, request: Request) -> Reply:
    return json_reply(await request.json())


@table.get("/forever", "forever")
async def forever(app: object, request: Request) -> Streamed:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        try:
            await asyncio.sleep(60)
        finally:
            stream_gone.set()
        yield b"never\n"

    return Streamed(chunks())


@table.post("/hijack", "hijack")
async def hijack(app: object, request: Request) -> Hijack:
    async def run(raw: Raw) -> None:
        data = raw.leftover or await raw.read(100)
        await raw.write(b"echo:" + data)
        raw.close_write()

    return Hijack(run)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "api.sock"
    listener = listeners.unix_listener(path)
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.Server(None, Router(table), [listener]).run(stop, ready.set))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield path
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    listener.close()


def _exchange(path: Path, data: bytes, *, read_until: bytes = b"", timeout_s: float = 5.0) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(data)
        received = b""
        while not (read_until and read_until in received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_keep_alive_and_errors(running: Path) -> None:
    body = b'{"a": 1}'
    request = b"POST /v1.44/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    answers = _exchange(running, request * 2 + b"GET /v1.10/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answers.count(b"HTTP/1.1 200 OK") == 2 and answers.count(b'{"a": 1}') == 2
    assert b"HTTP/1.1 400 Bad Request" in answers and b"too old" in answers
    assert b"Api-Version: 1.44" in answers
    missing = _exchange(running, b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"404 Not Found" in missing and b'"page not found"' in missing
    garbage = _exchange(running, b"NOT HTTP AT ALL\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400")


def test_body_limit_and_bad_json(running: Path) -> None:
    huge = _exchange(running, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{")
    assert b"400 Bad Request" in huge and b"larger than the limit" in huge and b"Connection: close" in huge
    bad = _exchange(running, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{x}")
    assert b"400 Bad Request" in bad and b"malformed JSON" in bad


def test_a_client_leaving_a_stream_ends_it_and_the_server_serves_on(running: Path) -> None:
    stream_gone.clear()
    first = _exchange(running, b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n", read_until=b"first\n")
    assert b"Transfer-Encoding: chunked" in first
    assert stream_gone.wait(5), "the stream's producer was not stopped"
    again = _exchange(running, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert b"200 OK" in again


def test_hijack_after_101(running: Path) -> None:
    answer = _exchange(running, b"POST /hijack HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello")
    assert answer.startswith(b"HTTP/1.1 101 ") and b"Upgrade: tcp" in answer and answer.endswith(b"echo:hello")
    plain = _exchange(running, b"POST /hijack HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nhi")
    assert plain.startswith(b"HTTP/1.1 200 OK") and plain.endswith(b"echo:hi")


def test_socket_rules(tmp_path: Path) -> None:
    path = tmp_path / "d.sock"
    live = listeners.unix_listener(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    with pytest.raises(ConflictError, match="another server"):
        listeners.unix_listener(path)
    live.sock.close()  # the server died; its file stays behind
    replaced = listeners.unix_listener(path)
    replaced.close()
    assert not path.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConflictError, match="not a socket"):
        listeners.unix_listener(tmp_path / "file")
    with pytest.raises(InvalidArgumentError, match="mutual TLS"):
        listeners.open_listeners(["tcp://127.0.0.1:0"], None, path, environ={})
    with pytest.raises(InvalidArgumentError, match="unsupported host"):
        listeners.open_listeners(["ssh://x"], None, path, environ={})
    assert listeners.activated_sockets({"LISTEN_PID": "1", "LISTEN_FDS": "2"}) == []
