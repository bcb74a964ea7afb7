"""`exec -t` in a VM: a session on the guest's exec console (guest/agent.sh, agent_tty_start).

The guest runs the command in a session of its own whose controlling terminal is a virtio console
(/dev/hvcN, with line discipline: echo, ^C as SIGINT, job control), so a shell behaves as over ssh.
This side connects to the console's socket chardev first (nothing of the session's output is lost),
asks the ctl loop to start the session, then copies stdin to the terminal and the terminal to stdout
until the session's end marker: ``ESC ] isobox;SESSION;STATUS BEL``, which the guest writes on the same
terminal after the command ended, so no output of the command can follow it. Input is passed on only
after ``ESC ] isobox;SESSION;ready BEL``: what a terminal receives before its reader opened it is
dropped. The markers are OSC sequences: a terminal that ever saw a stray one ignores it.

The console has one host connection, so one session runs at a time per VM; a second is refused at
once rather than queued behind an interactive shell.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import select
from collections.abc import Callable
from pathlib import Path

from isobox.drivers.base import TerminalSize, write_all
from isobox.drivers.vm import agent, streams
from isobox.drivers.vm.agent import AgentChannel
from isobox.errors import WorkloadError

START_TIMEOUT_S = 10.0
END_OF_INPUT = b"\x04"  # ^D: end of input for a program reading the terminal in canonical mode
_PREFIX = b"\x1b]isobox;"
_MARKER = re.compile(rb"\x1b\]isobox;([0-9a-f]+);(ready|[0-9]{1,3})\x07")


def run(
    ctl: AgentChannel,
    socket_path: Path,
    command: str,
    *,
    stdin: int | None,
    stdout: int,
    terminal: TerminalSize,
    alive: Callable[[], bool],
    lock_dir: Path,
    workload: str,
) -> int:
    """Run ``command`` (a guest shell script) on the exec console; returns its exit status."""
    with streams.one_session(lock_dir, "-t", workload), streams.connect(socket_path) as conn:
        session = secrets.token_hex(6)
        script = base64.b64encode(command.encode()).decode()
        rows, columns = terminal.changed() or (24, 80)
        reply = ctl.request(f"tty {session} {rows} {columns} {script}", START_TIMEOUT_S)
        if reply.get("rc") != "0":
            raise WorkloadError(
                f"the guest agent could not start the session (status {reply.get('rc')})", op="exec in VM", id=workload
            )
        scanner = MarkerScanner(session)
        sources = [conn.fileno()]  # stdin joins once the guest's terminal is ready (input before is lost)
        while True:
            resized = terminal.changed()
            if resized is not None:
                agent.resize_terminal(ctl, "exec", *resized)
            ready, _, _ = select.select(sources, [], [], 0.2)
            if not ready and not alive():
                raise WorkloadError("the VM stopped during exec", op="exec in VM", id=workload)
            for fd in ready:
                if fd != conn.fileno():
                    data = os.read(fd, 4096)
                    if not data:
                        sources.remove(fd)
                        data = END_OF_INPUT
                    conn.sendall(data)
                    continue
                received = conn.recv(65536)
                if not received:
                    raise WorkloadError("the VM's exec console closed", op="exec in VM", id=workload)
                shown, events = scanner.feed(received)
                write_all(stdout, shown)
                for event in events:
                    if isinstance(event, int):
                        return event
                    if stdin is not None:  # READY
                        sources.append(stdin)
    raise AssertionError("unreachable")  # for type checkers: the loop only ends by return or raise


READY = "ready"


class MarkerScanner:
    """Splits the console's output into what the user sees and this session's markers (pure):
    ``ready`` once the command's terminal is set up, then its exit status."""

    def __init__(self, session: str) -> None:
        self.session = session.encode()
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, list[str | int]]:
        """(bytes to show now, the markers of this session found: READY, then the exit status)."""
        buffer = self._held + data
        self._held = b""
        shown: list[bytes] = []
        events: list[str | int] = []
        position = 0
        for match in _MARKER.finditer(buffer):
            if match.group(1) != self.session:
                continue
            shown.append(buffer[position : match.start()])
            position = match.end()
            value = match.group(2).decode()
            if value != READY:
                events.append(int(value))
                return b"".join(shown), events  # nothing of the session follows its end
            events.append(READY)
        rest = buffer[position:]
        # Hold back only a tail that may still become this session's marker; everything else
        # (colour codes, other escape sequences) is shown at once.
        start = rest.rfind(b"\x1b")
        if start != -1 and _could_become_marker(rest[start:], self.session):
            self._held, rest = rest[start:], rest[:start]
        shown.append(rest)
        return b"".join(shown), events


def _could_become_marker(tail: bytes, session: bytes) -> bool:
    head = _PREFIX + session + b";"
    if len(tail) <= len(head):
        return head.startswith(tail)
    rest = tail[len(head) :]
    return len(rest) <= len(READY) and (rest.isdigit() or READY.encode().startswith(rest))
