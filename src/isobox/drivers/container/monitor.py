"""conmon: the small C monitor (from Podman and CRI-O) that keeps each container's stdio, log and exit code.

Why conmon and not a Python process per container: it costs ~1 MB of RSS instead of ~15 MB, it
survives the isobox process that started it, and it writes the exit code (exit-dir/ID, persist/exit)
and an `oom` marker even when no isobox process is alive. Protocol used here (conmon 2.1):

- `_OCI_SYNCPIPE=<fd>`: conmon writes `{"data": PID}` once `runtime create` made the container, or
  `{"data": -1, "message": …}` if it failed; then closes it.
- `--full-attach`: the attach socket is BUNDLE/attach (SOCK_SEQPACKET); each message from conmon is one
  byte of stream id (2 stdout, 3 stderr) then the data; what a client writes goes to the container's stdin.
- BUNDLE/ctl is a FIFO taking "1 HEIGHT WIDTH\n" to resize the TTY and "2 0 0\n" to reopen the log
  (conmon's REOPEN_LOGS_EVENT, what CRI-O sends for ReopenContainerLog): conmon then writes a new
  log file at the log path, and keeps nothing else of the old one.
- No --log-size-max: past that size conmon truncates the log and keeps no copy. isobox keeps the whole
  log by default (Docker's json-file default) and rotates by --log-opt itself (service/logrotate.py).
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isobox.drivers.base import write_all
from isobox.drivers.container.runtime import runtime_message
from isobox.errors import WorkloadError

STDOUT_ID = 2
STDERR_ID = 3
ATTACH_BUFFER = 8192 + 1
SYNC_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ConmonPlan:
    conmon: str
    runtime: str
    runtime_root: str
    id: str
    name: str
    bundle: str
    exit_dir: str
    log_path: str
    terminal: bool = False
    stdin: bool = False
    exit_command: tuple[str, ...] = ()
    restore: str = ""  # a checkpoint's image directory: conmon runs `runtime restore` instead of create
    runtime_args: tuple[str, ...] = ()  # more global options of the runtime (e.g. --criu=PATH)
    restore_args: tuple[str, ...] = ()  # options of `runtime restore`


def build_argv(plan: ConmonPlan) -> list[str]:
    """Pure: the conmon command line for one container."""
    bundle = Path(plan.bundle)
    argv = [
        plan.conmon,
        "--api-version",
        "1",
        "-c",
        plan.id,
        "-u",
        plan.id,
        "-n",
        plan.name,
        "-r",
        plan.runtime,
        "--runtime-arg",
        f"--root={plan.runtime_root}",
        *[word for arg in plan.runtime_args for word in ("--runtime-arg", arg)],
        "-b",
        plan.bundle,
        "-p",
        str(bundle / "pidfile"),
        "-P",
        str(bundle / "conmon.pid"),
        "--exit-dir",
        plan.exit_dir,
        "-0",
        str(bundle / "persist"),
        "-l",
        f"k8s-file:{plan.log_path}",
        "--log-level",
        "error",
        "--full-attach",
        "--socket-dir-path",
        str(bundle),
    ]
    if plan.terminal:
        argv.append("-t")
    if plan.stdin:
        argv.append("-i")
    if plan.restore:
        argv += ["--restore", plan.restore]
        for arg in plan.restore_args:
            argv += ["--runtime-opt", arg]
    if plan.exit_command:
        argv += ["--exit-command", plan.exit_command[0]]
        for arg in plan.exit_command[1:]:
            argv += ["--exit-command-arg", arg]
    return argv


def spawn(plan: ConmonPlan, during: Callable[[], None] | None = None) -> int:
    """Start conmon, which creates the container (not yet started). Returns the container's pid.

    ``during`` runs while the runtime creates the container; it must not raise (see ContainerDriver)."""
    read_fd, write_fd = os.pipe()
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "_OCI_SYNCPIPE": str(write_fd)}
    try:
        proc = subprocess.Popen(
            build_argv(plan),
            env=env,
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            cwd=plan.bundle,  # conmon also writes an "oom" marker into its working directory
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise WorkloadError(f"cannot start conmon: {exc}", op="create container", id=plan.id) from exc
    os.close(write_fd)
    try:
        if during is not None:
            during()
        message = _read_sync(read_fd, plan.id)
    finally:
        os.close(read_fd)
        stderr = _finish(proc, plan.id)
    data = message.get("data", -1)
    pid = data if isinstance(data, int) else -1
    if pid <= 0:
        raw = str(message.get("message") or stderr.decode(errors="replace").strip())
        detail = runtime_message(raw) or "no reason given"  # runc's log line: keep its message
        raise WorkloadError(
            f"the OCI runtime could not create the container: {detail}", op="create container", id=plan.id
        )
    return pid


def _finish(proc: subprocess.Popen[bytes], workload: str) -> bytes:
    """conmon's first process exits once it forked the monitor: its stderr, waiting a bounded time."""
    try:
        return proc.communicate(timeout=SYNC_TIMEOUT_S)[1]
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise WorkloadError(f"conmon did not detach within {SYNC_TIMEOUT_S:.0f} s", op="create container",
                            id=workload) from exc


def _read_sync(fd: int, workload: str) -> dict[str, object]:
    buffer = b""
    while b"\n" not in buffer:
        ready, _, _ = select.select([fd], [], [], SYNC_TIMEOUT_S)
        if not ready:
            raise WorkloadError("conmon did not report the container pid in time", op="create container", id=workload)
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buffer += chunk
    if not buffer.strip():
        return {"data": -1}
    try:
        value = json.loads(buffer.splitlines()[0])
    except json.JSONDecodeError as exc:
        raise WorkloadError(f"conmon sent {buffer!r}", op="create container", id=workload) from exc
    return value if isinstance(value, dict) else {"data": -1}


def connect_attach(bundle: Path) -> socket.socket:
    # A unix socket path is limited to 108 bytes; going through /proc/self/fd/N of the opened bundle
    # directory keeps the path short however deep the bundle lies (conmon binds it the same way).
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    dir_fd = os.open(bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dir_fd}/attach")
    except OSError:
        sock.close()
        raise
    finally:
        os.close(dir_fd)
    return sock


DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, as Docker's default


def pump(
    sock: socket.socket,
    stdin: int | None,
    stdout: int,
    stderr: int,
    tick: Callable[[], None] | None = None,
    detach_keys: bytes | None = None,
) -> bool:
    """Copy the attach stream to stdout/stderr, and stdin to the container, until the container's output
    ends (False) or the caller types ``detach_keys`` (True); ``tick`` runs at least every 0.2 s
    (passing a terminal resize on)."""
    sources: list[int] = [sock.fileno()] + ([stdin] if stdin is not None else [])
    held = b""  # the start of the detach keys, kept back until the next key decides
    while True:
        if tick is not None:
            tick()
        ready, _, _ = select.select(sources, [], [], None if tick is None else 0.2)
        if sock.fileno() in ready:
            try:
                message = sock.recv(ATTACH_BUFFER)
            except ConnectionResetError:  # conmon closed with input of ours unread: the container has ended
                return False
            if not message:
                return False
            target = stderr if message[0] == STDERR_ID else stdout
            write_all(target, message[1:])
        if stdin is not None and stdin in ready:
            data = os.read(stdin, 8192)
            if not data:
                sources.remove(stdin)
                sock.shutdown(socket.SHUT_WR)
                stdin = None
                continue
            if detach_keys:
                data, held = held + data, b""
                if detach_keys in data:
                    return True
                keep = next((n for n in range(len(detach_keys) - 1, 0, -1) if data.endswith(detach_keys[:n])), 0)
                data, held = data[: len(data) - keep], data[len(data) - keep :]
            if data:
                try:
                    sock.sendall(data)
                except (BrokenPipeError, ConnectionResetError):  # the container ended: its output is read above
                    sources.remove(stdin)
                    stdin = None


RESIZE_EVENT = 1
REOPEN_LOG_EVENT = 2


def resize(bundle: Path, rows: int, columns: int) -> None:
    """Tell conmon the terminal size (its ctl FIFO, message type 1)."""
    _control(bundle, RESIZE_EVENT, rows, columns)


def reopen_log(bundle: Path) -> bool:
    """Ask conmon to start a new log file at its log path (ctl message type 2); False if no conmon reads
    the FIFO (it ended: nothing writes the log any more)."""
    return _control(bundle, REOPEN_LOG_EVENT, 0, 0)


def _control(bundle: Path, kind: int, first: int, second: int) -> bool:
    try:
        # O_NONBLOCK: opening a FIFO nobody reads fails with ENXIO (fifo(7)) instead of blocking.
        fd = os.open(bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.write(fd, f"{kind} {first} {second}\n".encode())
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
