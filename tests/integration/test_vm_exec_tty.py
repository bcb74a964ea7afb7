"""`exec -t` / `exec -it` in a VM: a real terminal in the guest (its exec console), driven here through a
pseudo-terminal as a user's shell would drive it: echo, window size, ^C, exit status."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
from tests.integration.conftest import ISOBOX, Cli

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(240)]


class Terminal:
    """`isobox ARGS` on the slave side of a pseudo-terminal of ROWS x COLS."""

    def __init__(self, cli: Cli, *args: str, rows: int = 30, cols: int = 100) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: its terminal gets the size before isobox starts
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execve(ISOBOX[0], [*ISOBOX, *args], dict(os.environ, ISOBOX_ROOT=str(cli.root)))
        self.seen = b""

    def resize(self, rows: int, cols: int) -> None:
        """As a terminal window does: the new size, and SIGWINCH to its foreground processes (isobox)."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, needle: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while needle.encode() not in self.seen:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no {needle!r} in {self.seen[-400:]!r}")
            try:
                self.seen += os.read(self.fd, 4096)
            except OSError:  # the child ended: the slave side is gone
                raise AssertionError(f"ended without {needle!r}: {self.seen[-400:]!r}") from None

    def exit_code(self, timeout_s: float = 30) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with_output = select.select([self.fd], [], [], 0.1)[0]
            if with_output:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:
                    pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        raise AssertionError(f"isobox did not exit: {self.seen[-400:]!r}")


def test_exec_t_streams_a_terminal_and_returns_the_status(cli: Cli) -> None:
    cli("run", "-d", "--vm", "--network", "none", "--name", "v", "busybox", "sleep", "600", check=True)
    done = cli("exec", "-t", "v", "sh", "-c", "tty; stty size; echo out-$((6*7)); exit 3", timeout=120)
    assert done.returncode == 3, done.stderr
    # Not a terminal on this side: 24x80, and the terminal's CR LF line ends.
    assert done.stdout.splitlines()[:3] == ["/dev/hvc0", "24 80", "out-42"]
    assert "\x1b]isobox" not in done.stdout, "the end marker is never shown"
    assert cli("exec", "v", "echo", "plain").stdout == "plain\n", "the agent's own exec still works"


def test_exec_it_is_an_interactive_shell_with_job_control_signals(cli: Cli) -> None:
    # -t on the workload too: its terminal is the first console, exec's the second.
    cli("run", "-d", "-t", "--vm", "--network", "none", "--name", "v", "busybox", "sleep", "600", check=True)
    shell = Terminal(cli, "exec", "-it", "v", "sh")
    shell.expect("# ")  # the prompt
    shell.send("tty; stty size\r")
    shell.expect("/dev/hvc1")
    shell.expect("30 100")
    busy = cli("exec", "-t", "v", "true")
    assert busy.returncode != 0 and "one at a time" in busy.stderr
    shell.send("sleep 100; echo not-interrupted\r")
    time.sleep(1.0)
    shell.send("\x03")  # ^C in the user's terminal: SIGINT in the guest's foreground job
    shell.send("echo back-$((6*7))\r")
    shell.expect("back-42", timeout_s=15)
    assert shell.seen.count(b"not-interrupted") == 1, "only the echo of the line typed, never its output"
    shell.resize(40, 120)
    time.sleep(1.0)  # SIGWINCH reaches isobox, which passes the size on to the guest's terminal
    shell.send("stty size\r")
    shell.expect("40 120")
    shell.send("exit 7\r")
    assert shell.exit_code() == 7
    # The next session starts at once (the last one ended cleanly).
    assert cli("exec", "-t", "v", "sh", "-c", "exit 4", timeout=60).returncode == 4


def test_exec_i_streams_stdin_to_the_guest_command(cli: Cli, tmp_path: Path) -> None:
    """exec -i without -t: the caller's input, byte for byte, then end-of-file; stdout and stderr apart."""
    cli("run", "-d", "--vm", "--network", "none", "--name", "v", "busybox", "sleep", "600", check=True)
    blob = os.urandom(300_000)
    (tmp_path / "blob").write_bytes(blob)
    with open(tmp_path / "blob", "rb") as source:
        done = subprocess.run(
            [*ISOBOX, "exec", "-i", "v", "sh", "-c", "sha256sum; echo to-stderr >&2; exit 5"],
            stdin=source, capture_output=True, env=dict(os.environ, ISOBOX_ROOT=str(cli.root)), timeout=120,
        )
    assert done.returncode == 5, done.stderr
    assert done.stdout.split()[0].decode() == hashlib.sha256(blob).hexdigest()
    assert done.stderr == b"to-stderr\n"
    # A command that reads only the start: the next one gets its own input, not the rest of this one's.
    assert cli("exec", "-i", "v", "head", "-c", "4", input=b"abcdefgh" * 1000).stdout == "abcd"
    assert cli("exec", "-i", "v", "cat", input=b"fresh\n").stdout == "fresh\n"
    assert cli("exec", "-i", "v", "wc", "-c", input=b"").stdout.strip() == "0"


def test_run_it_terminal_follows_the_window_size(cli: Cli) -> None:
    """run -it, a VM and a container alike: the terminal starts at the caller's size and follows it."""
    for kind in (["--vm", "--network", "none"], ["--network", "none"]):
        shell = Terminal(cli, "run", "-it", "--rm", *kind, "busybox", "sh", rows=33, cols=91)
        shell.expect("# ", timeout_s=60)
        shell.send("stty size\r")
        shell.expect("33 91")
        shell.resize(44, 111)
        time.sleep(1.0)
        shell.send("stty size\r")
        shell.expect("44 111")
        shell.send("exit 2\r")
        assert shell.exit_code(timeout_s=60) == 2, kind


def test_attach_to_a_terminal_and_detach_with_ctrl_p_ctrl_q(cli: Cli) -> None:
    """A container and a VM started with -dit: attach joins the terminal, ctrl-p ctrl-q leaves it running."""
    for name, kind in (("c", ["--network", "none"]), ("v", ["--vm", "--network", "none"])):
        cli("run", "-dit", "--name", name, *kind, "busybox", "sh", check=True)
        time.sleep(4 if name == "v" else 0.5)
        shell = Terminal(cli, "attach", name)
        time.sleep(0.5)
        shell.send("echo attached-$((6*7))\r")
        shell.expect("attached-42", timeout_s=30)
        shell.send("\x10\x11")
        assert shell.exit_code() == 0, name
        assert json.loads(cli("inspect", name, check=True).stdout)[0]["State"]["Status"] == "running", name
