"""The workload's output: raw port files written by QEMU, turned into the shared k8s-file log.

Why QEMU writes raw files and isobox converts them when it reads: the log must be complete even when
no isobox process lives while the VM runs, and nothing but QEMU is guaranteed to be there. Framing
the lines in the guest was tried and rejected: busybox `date` has no sub-second time and busybox
`ts` buffers its output, so lines would arrive late and out of order. So stdout and stderr each go
to their own virtio-serial port and file (kept apart by construction), and every reader (observe,
wait, attach, logs) first appends the new complete lines to plan.log_path under a lock, remembering
how far it got in ``log.offsets``. A line's timestamp is therefore the time isobox first saw it: exact
while attached, the time of the next read otherwise. Partial last lines are written when the VM is
gone (the stream is then final), as "P" entries.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from isobox.drivers.base import write_all
from isobox.drivers.logfile import LogWriter
from isobox.drivers.vm.qemu_args import VMFiles
from isobox.errors import ConflictError, HostError, WorkloadError
from isobox.model.logs import LogOptions
from isobox.state.locks import locked

STREAMS = ("stdout", "stderr")


def _offsets_path(files: VMFiles) -> Path:
    return files.root / "log.offsets"


def _read_offsets(files: VMFiles) -> dict[str, int]:
    try:
        data = json.loads(_offsets_path(files).read_text())
        return {name: int(data.get(name, 0)) for name in STREAMS}
    except (OSError, ValueError):
        return dict.fromkeys(STREAMS, 0)


def read_from(path: Path, offset: int, limit: int = 8 * 1024 * 1024) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(limit)
    except FileNotFoundError:
        return b""


def sync_log(files: VMFiles, log_path: Path, lock_dir: Path, key: str, *, final: bool,
             options: LogOptions | None = None) -> None:
    """Append what QEMU wrote since the last sync to the log (complete lines; everything if final), rotating
    it by ``options`` (--log-opt) as a container's. What could not be written (a full disk) stays in the
    port files and is appended by a later sync: the offsets only move past what reached the log."""
    with locked(lock_dir, f"vm-log-{key}"):
        offsets = _read_offsets(files)
        chunks: dict[str, bytes] = {}
        for stream in STREAMS:
            data = read_from(files.port(stream), offsets[stream])
            if not final:
                data = data[: data.rfind(b"\n") + 1]
            chunks[stream] = data
        if not any(chunks.values()):
            return
        try:
            writer = LogWriter(log_path, options)
            try:
                for stream, data in chunks.items():
                    writer.write(stream, data)
                    writer.flush()  # a partial last line: present only when final
                    offsets[stream] += len(data)
            finally:
                writer.close()
        except OSError as exc:
            raise HostError(f"cannot write the log: {exc.strerror or exc}", op="write VM log",
                            path=str(log_path)) from exc
        finally:
            _write_offsets(files, offsets)


def _write_offsets(files: VMFiles, offsets: dict[str, int]) -> None:
    temporary = _offsets_path(files).with_suffix(".tmp")
    try:
        temporary.write_text(json.dumps(offsets))
        os.replace(temporary, _offsets_path(files))
    except OSError:  # a full disk: the next sync writes these lines again rather than lose them
        temporary.unlink(missing_ok=True)


def sizes(files: VMFiles) -> dict[str, int]:
    result = {}
    for stream in STREAMS:
        try:
            result[stream] = files.port(stream).stat().st_size
        except FileNotFoundError:
            result[stream] = 0
    return result


def copy_new(files: VMFiles, positions: dict[str, int], fds: dict[str, int]) -> bool:
    """Write what appeared since ``positions`` to the caller's fds; True if anything did."""
    moved = False
    for stream in STREAMS:
        data = read_from(files.port(stream), positions[stream], 1024 * 1024)
        if data:
            write_all(fds[stream], data)
            positions[stream] += len(data)
            moved = True
    return moved


class StdinFeeder:
    """Copies the caller's stdin to the guest's stdin port (a unix socket chardev) until EOF, then
    shuts down the sending side, which the guest reads as end-of-file.

    Not close(): QEMU reads the socket only while the guest has the port open, and a hang-up
    (POLLHUP, which close() causes) disconnects the chardev at once, dropping data not yet read
    (chardev/char-socket.c, tcp_chr_hup). After shutdown(SHUT_WR) QEMU first reads everything and
    only then sees end-of-file."""

    def __init__(
        self, source_fd: int, socket_path: Path, connect_timeout_s: float = 10.0, preamble: bytes = b""
    ) -> None:
        self._source: int | None = source_fd
        self._sock = connect(socket_path, connect_timeout_s)
        if preamble:
            self._sock.sendall(preamble)

    def run(self) -> None:
        """Pump until the caller's input ended or close() (for a thread of its own)."""
        while self._source is not None:
            self.pump(0.2)

    def pump(self, timeout_s: float) -> bool:
        """Move what the caller typed (waiting at most timeout_s); True if anything moved."""
        if self._source is None:
            time.sleep(timeout_s)
            return False
        ready, _, _ = select.select([self._source], [], [], timeout_s)
        if not ready:
            return False
        data = os.read(self._source, 65536)
        if not data:
            self._source = None
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
            return False
        try:
            self._sock.sendall(data)
        except OSError:  # the VM went away
            self.close()
        return True

    def close(self) -> None:
        self._source = None
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a send blocked in another thread
        self._sock.close()


def bridge_terminal(
    socket_path: Path,
    stdin: int | None,
    stdout: int,
    *,
    alive: Callable[[], bool],
    tick: Callable[[], None] | None = None,
    detach_keys: bytes | None = None,
) -> bool:
    """-t: copy the guest terminal's output to stdout and (with -i) stdin to it, until the VM ends
    (False) or the caller types ``detach_keys`` (True); ``tick`` runs between reads (a terminal
    resize). The log needs nothing from here: the chardev's logfile records the terminal's output."""
    with connect(socket_path) as conn:
        sources: list[int] = [conn.fileno()] + ([stdin] if stdin is not None else [])
        while alive():
            if tick is not None:
                tick()
            if not sources:  # QEMU closed the terminal: only the power-off is left to wait for
                time.sleep(0.05)
                continue
            ready, _, _ = select.select(sources, [], [], 0.1)
            for fd in ready:
                data = conn.recv(65536) if fd == conn.fileno() else os.read(fd, 4096)
                if not data:  # end of the terminal, or of the caller's input (a tty passes no EOF on)
                    sources.remove(fd)
                elif fd == conn.fileno():
                    write_all(stdout, data)
                elif detach_keys and detach_keys in data:
                    return True
                else:
                    conn.sendall(data)
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                write_all(stdout, data)
    return False


@contextlib.contextmanager
def one_session(lock_dir: Path, flag: str, workload: str) -> Iterator[None]:
    """One `exec FLAG` stream per VM at a time (its port has one host connection): a second is refused
    at once rather than queued behind, say, an interactive shell."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(locked(lock_dir, f"vm-exec{flag}-{workload}", wait=False))
    except BlockingIOError:
        raise ConflictError(
            f"another exec {flag} is running in this VM (one at a time)", op="exec in VM", id=workload
        ) from None
    with stack:
        yield


def connect(socket_path: Path, timeout_s: float = 10.0) -> socket.socket:
    """A connection to one of QEMU's socket chardevs (retried while QEMU is still setting it up)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.connect(str(socket_path))
            return conn
        except OSError as exc:
            if time.monotonic() > deadline:
                conn.close()
                raise WorkloadError(f"cannot connect to the VM: {exc.strerror or exc}", op="connect to VM",
                                    path=str(socket_path)) from exc
            time.sleep(0.02)
