"""A container's stdio: streaming it while attached (a foreground start, `attach`) through conmon's attach
socket, and `exec` through the runtime; and what runc's refusal of a command means (Docker's 127/126)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from isobox.drivers.base import TerminalSize, write_all
from isobox.drivers.container import bundle, monitor
from isobox.drivers.container.runtime import Runtime
from isobox.errors import CommandError, InvalidStateError, WorkloadError
from isobox.model.record import WorkloadRecord
from isobox.model.streams import Attach, ExecSpec
from isobox.model.users import resolve_user
from isobox.storage import rootfs as rootfs_access


def stream(record: WorkloadRecord, attach: Attach, *, start: Callable[[], object] | None = None) -> bool:
    """Copy the container's output to ``attach`` (and its stdin from it, with -i) until the output ends
    (True) or the caller detaches with ctrl-p ctrl-q on a terminal (False). With ``start``, the container
    was created, not started: connected first, it then starts at the caller's terminal size and nothing it
    prints is missed."""
    plan = record.plan
    workdir = Path(plan.workload_dir)
    try:
        sock = monitor.connect_attach(workdir)
    except OSError as exc:
        raise InvalidStateError(f"cannot attach to {record.name}: {exc.strerror or exc}", op="attach",
                                id=record.id) from exc
    tty = plan.process.tty
    with contextlib.closing(sock), TerminalSize(attach.stdout if tty else -1) as size:

        def resize() -> None:
            changed = size.changed()
            if changed is not None:
                monitor.resize(workdir, *changed)

        if start is not None:
            resize()
            start()
        stdin = attach.stdin if plan.process.interactive else None
        detach_keys = monitor.DETACH_KEYS if tty and start is None else None
        detached = monitor.pump(sock, stdin, attach.stdout, attach.stderr, resize if tty else None, detach_keys)
    return not detached


def exec(runtime: Runtime, record: WorkloadRecord, spec: ExecSpec, streams: Attach) -> int:
    plan = record.plan
    root = bundle.rootfs_dir(plan)
    user = resolve_user(
        spec.user if spec.user is not None else plan.process.user,
        rootfs_access.read_text_in_root(root, "/etc/passwd"),
        rootfs_access.read_text_in_root(root, "/etc/group"),
    )
    config_path = Path(plan.workload_dir) / "config.json"
    try:
        process = dict(json.loads(config_path.read_text())["process"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorkloadError(f"the container's OCI configuration cannot be read: {exc}", op="exec",
                            path=str(config_path)) from exc
    env = dict(item.split("=", 1) for item in process["env"])
    env.update(dict(spec.env))
    process.update(
        terminal=spec.tty,
        args=list(spec.argv),
        env=[f"{k}={v}" for k, v in env.items()],
        cwd=bundle.safe_cwd(root, spec.cwd) if spec.cwd else process["cwd"],
        user={"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
    )
    # The process spec goes to runc in memory (a memfd it opens as /proc/self/fd/N), not in a file: exec
    # then works on a full disk too, to free space from inside the container.
    spec_fd = os.memfd_create("isobox-exec-process", os.MFD_CLOEXEC)
    try:
        write_all(spec_fd, json.dumps(process).encode())
        argv = runtime.argv("exec", "--process", f"/proc/self/fd/{spec_fd}")
        if spec.tty:
            argv.append("--tty")
        if spec.detach:
            argv.append("--detach")
        argv.append(plan.id)
        if spec.tty and spec.interactive and streams.handed_terminal and streams.stdin is not None:
            # runc's foreground `exec --tty` resizes the container's terminal on SIGWINCH, reading its own
            # terminal's size: as the session leader of that terminal (setsid(1) -c), it gets SIGWINCH whenever
            # the terminal's owner sets a new size on it.
            argv = ["setsid", "--ctty", "--wait", *argv]
        return _run_foreground(argv, streams if spec.interactive else replace(streams, stdin=None), (spec_fd,))
    finally:
        os.close(spec_fd)


_EXEC_FAILURE = re.compile(r'exec: "(?P<command>[^"]*)": (?P<why>.*)$')


def exec_failure(message: str, workload: str) -> CommandError | None:
    """runc checks the command before the process runs (`runc create`): a command it cannot find is Docker's
    exit code 127, one it may not execute 126."""
    match = _EXEC_FAILURE.search(message)
    if match is None:
        return None
    why = match.group("why")
    if "not found" in why or "no such file or directory" in why:
        code = 127
    elif "permission denied" in why or "is a directory" in why:
        code = 126
    else:
        return None
    return CommandError(f'exec: "{match.group("command")}": {why}', exit_code=code, op="start", id=workload)


def _run_foreground(argv: list[str], streams: Attach, pass_fds: tuple[int, ...] = ()) -> int:
    import subprocess

    stdin = subprocess.DEVNULL if streams.stdin is None else streams.stdin
    done = subprocess.run(argv, stdin=stdin, stdout=streams.stdout, stderr=streams.stderr, check=False,
                          pass_fds=pass_fds)
    return done.returncode
