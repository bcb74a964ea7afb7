"""The isobox engine (`isobox serve`): finding it, and starting it when a workload needs one.

Most of isobox needs no long-running process (conmon supervises containers, QEMU runs VMs). What must
keep running (health checks, removing a detached VM started with --rm when it exits, restarting a
workload whose monitor died) lives in one process, the engine, which also serves the Docker API. It
writes ``<run>/engine.json`` ({"pid", "socket", "started_at"}) once it answers, and removes it when it
stops. A workload that needs it makes the service call ``ensure`` after creating it, so the CLI, the
Python API and the HTTP API behave alike; the CLI prints the one line that ``announce`` receives.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isobox.errors import HostError
from isobox.linux.proc import process_alive
from isobox.service.context import Context
from isobox.state.locks import locked

log = logging.getLogger(__name__)
MARKER = b"serve"  # an exact argument of the engine's command line (pids are reused)
START_TIMEOUT_S = 30.0
_announcers: list[Callable[[str], None]] = []


@dataclass(frozen=True)
class EngineInfo:
    pid: int
    socket: str
    started_at: float
    started_now: bool = False  # this call started it


def announce_with(callback: Callable[[str], None]) -> None:
    """Who tells the user that an engine was started (the CLI: one line on stderr)."""
    _announcers.append(callback)


def info_path(ctx: Context) -> Path:
    return ctx.paths.run / "engine.json"


def default_socket(ctx: Context) -> Path:
    return ctx.paths.run / "docker.sock"


def running(ctx: Context) -> EngineInfo | None:
    """The engine of this state root, if one runs (its pid alive and still `isobox serve`)."""
    try:
        data = json.loads(info_path(ctx).read_text())
        info = EngineInfo(int(data["pid"]), str(data["socket"]), float(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if process_alive(info.pid, MARKER) else None


def write_info(ctx: Context, socket_path: Path) -> None:
    """Called by the engine once it answers on ``socket_path``."""
    path = info_path(ctx)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), "socket": str(socket_path), "started_at": time.time()}))
    os.replace(temporary, path)


def remove_info(ctx: Context) -> None:
    """Called by the engine as it stops (only its own file: another engine may have replaced it)."""
    path = info_path(ctx)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def ensure(ctx: Context, reason: str) -> EngineInfo:
    """The running engine, started (`isobox [--root R] serve --background`) if none runs."""
    found = running(ctx)
    if found is not None:
        return found
    with locked(ctx.paths.locks, "engine"):
        found = running(ctx)
        if found is not None:
            return found
        started = _spawn(ctx)
    line = (f"isobox: started the isobox engine (pid {started.pid}) for {reason}; it keeps running "
            f"(stop it with kill {started.pid} or systemctl stop isobox)")
    log.info("%s", line)
    for callback in _announcers:
        callback(line)
    return started


def _spawn(ctx: Context) -> EngineInfo:
    import subprocess

    root = ("--root", str(ctx.paths.root)) if ctx.paths.root is not None else ()
    argv = [sys.executable, "-m", "isobox.cli.main", *root, "serve", "--background"]
    log_path = ctx.paths.lib / "engine.log"
    with open(log_path, "ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                   close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = running(ctx)
        if found is not None and answers(Path(found.socket)):
            return EngineInfo(found.pid, found.socket, found.started_at, started_now=True)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    detail = _tail(log_path)
    raise HostError(f"the isobox engine did not start: {detail or 'no answer in time'}", op="start engine",
                    path=str(log_path))


def answers(socket_path: Path, timeout_s: float = 2.0) -> bool:
    """Whether the server on ``socket_path`` answers GET /_ping."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout_s)
            conn.connect(str(socket_path))
            conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n")
            return conn.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
