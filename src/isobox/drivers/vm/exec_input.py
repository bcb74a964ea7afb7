"""`exec -i` in a VM: the caller's stdin streamed to the command in the guest (guest/agent.sh,
agent_with_input), its output returned when it ends, as for any exec.

The stream goes over the input port, a virtio-serial port on a socket chardev. This side connects
first, writes ``isobox-input SESSION`` and then the caller's input as it comes, and disconnects at its
end, which the guest reads as end-of-file (as the workload's own stdin works). A thread copies the
input while the agent request waits for the command's status; a command that ends before reading all
of it leaves the rest to the next session, which skips everything before its own line.
One stream runs at a time per VM.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from pathlib import Path

from isobox.drivers.vm import agent, streams


def run(
    channel: agent.AgentChannel,
    socket_path: Path,
    command: str,
    stdin: int,
    *,
    lock_dir: Path,
    workload: str,
    timeout_s: float | None = None,
) -> agent.ExecResult:
    with streams.one_session(lock_dir, "-i", workload), streams.connect(socket_path) as conn:
        session = secrets.token_hex(6)
        conn.sendall(f"isobox-input {session}\n".encode())
        copier = threading.Thread(target=_copy, args=(stdin, conn), name="exec-input", daemon=True)
        copier.start()
        try:
            return agent.run_script(channel, command, timeout_s, input_session=session)
        finally:
            # The command ended: stop the copy even if it is blocked sending (a reader still in
            # os.read of a terminal is left to end with this process: it is a daemon thread).
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _copy(stdin: int, conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := os.read(stdin, 65536):
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)  # end of input: QEMU sees the client go, the guest reads EOF
