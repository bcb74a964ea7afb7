"""`exec -i` in a VM: the caller's stdin streamed to the command in the guest (guest/agent.sh,
agent_with_input), its output returned when it ends, as for any exec.

The stream goes over the input port, a virtio-serial port on a socket chardev, copied by the same
StdinFeeder as the workload's own stdin: this side connects first, writes ``isobox-input SESSION``
and then the caller's input as it comes, and shuts its side down at the end, which the guest reads as
end-of-file. The feeder runs in a thread while the agent request waits for the command's status; a
command that ends before reading all of it leaves the rest to the next session, which skips
everything before its own line. One stream runs at a time per VM.
"""

from __future__ import annotations

import secrets
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
    with streams.one_session(lock_dir, "-i", workload):
        session = secrets.token_hex(6)
        feeder = streams.StdinFeeder(stdin, socket_path, preamble=f"isobox-input {session}\n".encode())
        # A daemon thread: one still in os.read of a terminal ends with this process.
        threading.Thread(target=feeder.run, name="exec-input", daemon=True).start()
        try:
            return agent.run_script(channel, command, timeout_s, input_session=session)
        finally:
            feeder.close()  # the command ended: the rest of the input is not wanted
