"""Between a hijacked connection (attach, exec start) and the blocking service call that streams a workload.

The service layer takes file descriptors (model.streams.Attach), as the CLI passes its own stdio. Here
they are socket pairs: the worker thread gets one end of each, the event loop the other. The loop copies
the client's bytes to the stdin pair and, when the client half-closes (CloseWrite, how the docker CLI
says its stdin ended), shuts that pair down for writing, which the workload reads as end-of-file. Output
goes to the client raw with a terminal, else in Docker's 8-byte multiplexed frames (stdout and stderr
each on a pair of its own). A client that goes away stops nothing: the output is still read (and
dropped), so the workload never blocks on it, and the worker returns when the workload's stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import struct
import termios
import threading
import tty
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from isobox.api.messages import Raw
from isobox.api.streams import frame
from isobox.model.streams import Attach

T = TypeVar("T")
CHUNK_BYTES = 64 * 1024


def _pair() -> tuple[socket.socket, socket.socket]:
    loop_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    loop_end.setblocking(False)
    return loop_end, worker_end


@dataclass
class Channels:
    tty: bool
    stdout: tuple[socket.socket, socket.socket] | None  # None with a terminal (pty)
    stderr: tuple[socket.socket, socket.socket] | None
    stdin: tuple[socket.socket, socket.socket] | None
    pty: tuple[int, int] | None = None  # (master, slave) for an exec with a terminal, instead of the pairs
    stdin_open: bool = False

    def attach(self) -> Attach:
        """The worker's ends, as the service layer takes them."""
        if self.pty is not None:
            slave = self.pty[1]
            return Attach(stdin=slave if self.stdin_open else None, stdout=slave, stderr=slave, handed_terminal=True)
        assert self.stdout is not None
        err = self.stderr or self.stdout
        return Attach(stdin=self.stdin[1].fileno() if self.stdin else None, stdout=self.stdout[1].fileno(),
                      stderr=err[1].fileno())

    def close_worker_ends(self) -> None:
        """Called by the worker when its call returned: the loop then reads the end of the output."""
        if self.pty is not None:
            with contextlib.suppress(OSError):
                os.close(self.pty[1])
        for pair in (self.stdout, self.stderr, self.stdin):
            if pair is not None:
                pair[1].close()

    def close_loop_ends(self) -> None:
        if self.pty is not None:
            with contextlib.suppress(OSError):
                os.close(self.pty[0])
        for pair in (self.stdout, self.stderr, self.stdin):
            if pair is not None:
                pair[0].close()


def open_channels(*, stdin: bool, tty: bool) -> Channels:
    return Channels(tty=tty, stdout=_pair(), stderr=None if tty else _pair(), stdin=_pair() if stdin else None)


def set_size(master: int, rows: int, columns: int) -> None:
    """A new size for the pseudo-terminal; the kernel tells its session's foreground processes (SIGWINCH)."""
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def open_terminal(*, stdin: bool, size: tuple[int, int] | None) -> Channels:
    """A pseudo-terminal instead of socket pairs, for an exec with -t: runc's `exec --tty` in the foreground
    copies between its own terminal and the container's (it refuses to run without one), and takes that
    terminal's size as the initial size. Raw mode: bytes pass unchanged, as over Docker's raw stream."""
    master, slave = os.openpty()
    tty.setraw(slave)
    if size is not None and all(size):
        set_size(master, *size)
    os.set_blocking(master, False)
    return Channels(tty=True, stdout=None, stderr=None, stdin=None, pty=(master, slave), stdin_open=stdin)


async def relay(raw: Raw, channels: Channels, work: Awaitable[T], client_eof: threading.Event | None = None) -> T:
    """Copy between the client and ``channels`` while ``work`` (the worker's call) runs; its result.
    ``client_eof`` is set when the client closed its sending side (or went away)."""
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()

    async def forward(sock: socket.socket, stream: str) -> None:
        while data := await loop.sock_recv(sock, CHUNK_BYTES):
            if gone.is_set():
                continue  # still read: the workload must never block on a client that left
            try:
                await raw.write(data if channels.tty else frame(stream, data))
            except (ConnectionError, OSError):
                gone.set()

    async def feed() -> None:
        target = channels.stdin[0] if channels.stdin is not None else None
        pending = raw.leftover
        while True:
            if pending and target is not None:
                await loop.sock_sendall(target, pending)
            try:
                pending = await raw.read(CHUNK_BYTES)
            except (ConnectionError, OSError):
                pending = b""
            if not pending:
                break
        if client_eof is not None:
            client_eof.set()
        if target is not None:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)

    if channels.pty is not None:
        outputs = [asyncio.create_task(_forward_pty(raw, channels.pty[0], gone))]
        feeding = asyncio.create_task(_feed_pty(raw, channels.pty[0], client_eof))
    else:
        assert channels.stdout is not None
        outputs = [asyncio.create_task(forward(channels.stdout[0], "stdout"))]
        if channels.stderr is not None:
            outputs.append(asyncio.create_task(forward(channels.stderr[0], "stderr")))
        feeding = asyncio.create_task(feed())
    try:
        result = await work
        await asyncio.gather(*outputs)
        return result
    finally:
        feeding.cancel()
        for task in outputs:
            task.cancel()
        await asyncio.gather(feeding, *outputs, return_exceptions=True)
        channels.close_loop_ends()


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _forward_pty(raw: Raw, master: int, gone: asyncio.Event) -> None:
    """The terminal's output to the client, until every holder of its other side closed it (EIO)."""
    while True:
        try:
            data = os.read(master, CHUNK_BYTES)
        except BlockingIOError:
            await _readable(master)
            continue
        except OSError:  # EIO: the other side is closed by all
            return
        if not data:
            return
        if not gone.is_set():
            try:
                await raw.write(data)
            except (ConnectionError, OSError):
                gone.set()


async def _feed_pty(raw: Raw, master: int, client_eof: threading.Event | None) -> None:
    """The client's keys to the terminal (a terminal has no half-close: the end of input changes nothing)."""
    pending = raw.leftover
    while True:
        view = memoryview(pending)
        while view:
            try:
                view = view[os.write(master, view):]
            except BlockingIOError:
                await asyncio.sleep(0.01)
            except OSError:
                return
        try:
            pending = await raw.read(CHUNK_BYTES)
        except (ConnectionError, OSError):
            pending = b""
        if not pending:
            if client_eof is not None:
                client_eof.set()
            return
