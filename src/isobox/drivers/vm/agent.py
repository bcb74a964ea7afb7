"""Host side of the guest agent (guest/agent.sh): requests and replies over two FIFO-backed ports.

QEMU holds both FIFOs of a ``pipe`` chardev open read-write, so the host can open them without
blocking, and data written while the guest is not yet listening waits in the port until it is.
Requests carry a random id; reply lines with another id (left by an interrupted earlier request)
are skipped. One request at a time per port and VM (a flock), because a reply has no other framing.
"""

from __future__ import annotations

import base64
import os
import secrets
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isobox.drivers.vm.qemu_args import VMFiles
from isobox.errors import WorkloadError
from isobox.state.locks import locked


@dataclass(frozen=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


class AgentChannel:
    def __init__(self, files: VMFiles, port: str, lock_dir: Path, workload: str, alive: Callable[[], bool]) -> None:
        self._in = Path(f"{files.pipe(port)}.in")
        self._out = Path(f"{files.pipe(port)}.out")
        self._port = port
        self._lock_dir = lock_dir
        self._workload = workload
        self._alive = alive

    def request(self, payload: str, timeout_s: float | None) -> dict[str, str]:
        """Send "ID payload"; collect "ID key value" replies until "rc" or "pong" arrives."""
        request_id = secrets.token_hex(6)
        with locked(self._lock_dir, f"vm-agent-{self._workload}-{self._port}"):
            try:
                reader = os.open(self._out, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                raise self._error(f"cannot open the agent port: {exc}") from exc
            try:
                self._send(f"{request_id} {payload}\n".encode())
                return self._collect(reader, request_id, timeout_s)
            finally:
                os.close(reader)

    def _send(self, line: bytes) -> None:
        try:
            fd = os.open(self._in, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise self._error(f"cannot open the agent port: {exc}") from exc
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _collect(self, reader: int, request_id: str, timeout_s: float | None) -> dict[str, str]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        buffered, replies = b"", {}
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise self._error(f"no answer from the guest agent within {timeout_s:.0f} s")
            ready, _, _ = select.select([reader], [], [], 0.2)
            if not ready:
                if not self._alive():
                    raise self._error("the VM stopped before the guest agent answered")
                continue
            buffered += os.read(reader, 1 << 20)
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                rid, _, rest = line.decode(errors="replace").partition(" ")
                if rid != request_id:
                    continue
                key, _, value = rest.partition(" ")
                replies[key] = value
                if key in ("rc", "pong"):
                    return replies

    def _error(self, message: str) -> WorkloadError:
        return WorkloadError(message, op=f"guest agent {self._port}", id=self._workload, path=str(self._in))


def run_script(
    channel: AgentChannel, script: str, timeout_s: float | None = None, input_session: str | None = None
) -> ExecResult:
    """Run ``script`` in the guest; with ``input_session``, its stdin is that session's stream on the
    input port (drivers/vm/exec_input.py), else /dev/null."""
    encoded = base64.b64encode(script.encode()).decode()
    replies = channel.request(f"{encoded} {input_session}" if input_session else encoded, timeout_s)
    return ExecResult(
        stdout=base64.b64decode(replies.get("out", "")),
        stderr=base64.b64decode(replies.get("err", "")),
        exit_code=int(replies.get("rc", "255")),
    )


def resize_terminal(channel: AgentChannel, which: str, rows: int, columns: int, timeout_s: float = 5.0) -> None:
    """Pass a new terminal size on ("tty": the workload's, "exec": an exec -t session's); best effort."""
    try:
        channel.request(f"resize {which} {int(rows)} {int(columns)}", timeout_s)
    except WorkloadError:
        pass  # the VM went away, or an agent from before resize existed: the size just stays


class Resizer:
    """Passes sizes of the workload's terminal on from a thread of its own, the latest one first: the
    first comes while the VM still boots, when the agent answers only seconds later, and the attached
    terminal must not wait for it."""

    def __init__(self, channel: AgentChannel, timeout_s: float = 60.0) -> None:
        self._channel = channel
        self._timeout_s = timeout_s
        self._latest: tuple[int, int] | None = None
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, rows: int, columns: int) -> None:
        self._latest = (rows, columns)
        self._wanted.set()
        if self._thread is None:  # started on the first size: none come when the caller has no terminal
            self._thread = threading.Thread(target=self._run, name="vm-resize", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._latest is not None:
                resize_terminal(self._channel, "tty", *self._latest, timeout_s=self._timeout_s)


def signal_workload(channel: AgentChannel, signal: int, timeout_s: float) -> bool:
    """True if the guest delivered the signal (False: no such process any more)."""
    return channel.request(f"signal {int(signal)}", timeout_s).get("rc") == "0"
