"""The workload functions of the Python API (containers and VMs alike); see isobox/__init__.py."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from typing import Unpack

from isobox.model.logs import LogEntry
from isobox.model.record import ProcessTable, RunResult, Stats, WorkloadRecord
from isobox.model.spec import WorkloadSpec
from isobox.model.streams import Attach, ExecSpec
from isobox.pyapi._context import Root, context
from isobox.pyapi.options import RunKwargs, command_argv, run_options


def spec(image: str, command: str | Sequence[str] | None = None, **options: Unpack[RunKwargs]) -> WorkloadSpec:
    """The WorkloadSpec `run` would use (nothing is created)."""
    from isobox.service.specs import build_spec

    policy = options.get("policy")
    if policy:
        os.environ["ISOBOX_POLICY"] = policy
    return build_spec(image, command_argv(command), run_options(options))


def run(
    image: str,
    command: str | Sequence[str] | None = None,
    *,
    detach: bool = False,
    root: Root = None,
    **options: Unpack[RunKwargs],
) -> RunResult:
    """Run a workload. In the foreground (the default), wait for it and return its exit code and its
    stdout and stderr; with ``detach=True``, return once it runs (exit_code None).

    >>> result = isobox.run("busybox", "sh -c 'echo hi; exit 3'", remove=True)  # doctest: +SKIP
    >>> result.exit_code, result.stdout                                          # doctest: +SKIP
    (3, b'hi\\n')
    """
    from isobox.model.options import pull_policy
    from isobox.service import workloads

    wanted = spec(image, command, **options)
    pull = pull_policy(options.get("pull", "missing"))
    with context(root) as ctx:
        if detach:
            return workloads.run(ctx, wanted, detach=True, pull=pull)
        return _captured(lambda streams: workloads.run(ctx, wanted, attach=streams, pull=pull))


def _captured(call: object) -> RunResult:
    """Run ``call(Attach)`` with stdout and stderr captured through pipes."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}

    def drain(fd: int) -> None:
        while data := os.read(fd, 65536):
            chunks[fd].append(data)
        os.close(fd)

    readers = [threading.Thread(target=drain, args=(fd,)) for fd in (out_r, err_r)]
    for reader in readers:
        reader.start()
    try:
        result = call(Attach(stdin=None, stdout=out_w, stderr=err_w))  # type: ignore[operator]
    finally:
        os.close(out_w)
        os.close(err_w)
        for reader in readers:
            reader.join()
    assert isinstance(result, RunResult)
    return RunResult(result.record, result.exit_code, b"".join(chunks[out_r]), b"".join(chunks[err_r]))


def create(
    image: str, command: str | Sequence[str] | None = None, *, root: Root = None, **options: Unpack[RunKwargs]
) -> WorkloadRecord:
    """Create a workload without starting it."""
    from isobox.model.options import pull_policy
    from isobox.service import workloads

    wanted = spec(image, command, **options)
    with context(root) as ctx:
        return workloads.create(ctx, wanted, pull=pull_policy(options.get("pull", "missing")))


def start(name: str, *, root: Root = None) -> WorkloadRecord:
    """Start a created or exited workload."""
    from isobox.service import workloads

    with context(root) as ctx:
        return workloads.start(ctx, name).record


def stop(name: str, *, timeout_s: float | None = None, root: Root = None) -> WorkloadRecord:
    """The stop signal, then SIGKILL after ``timeout_s`` (default: the workload's --stop-timeout)."""
    from isobox.service import control

    with context(root) as ctx:
        return control.stop(ctx, name, timeout_s=timeout_s)


def kill(name: str, signal: str | int = "KILL", *, root: Root = None) -> WorkloadRecord:
    """Send a signal (a name such as "TERM" or a number) to the workload."""
    from isobox.model.plan import parse_signal
    from isobox.service import control

    with context(root) as ctx:
        return control.kill(ctx, name, parse_signal(signal))


def pause(name: str, *, root: Root = None) -> WorkloadRecord:
    """Freeze a running workload (its processes, or a VM's vCPUs)."""
    from isobox.service import control

    with context(root) as ctx:
        return control.pause(ctx, name)


def unpause(name: str, *, root: Root = None) -> WorkloadRecord:
    """Let a paused workload run on."""
    from isobox.service import control

    with context(root) as ctx:
        return control.unpause(ctx, name)


def restart(name: str, *, timeout_s: float | None = None, root: Root = None) -> WorkloadRecord:
    """Stop the workload, then start it again."""
    from isobox.service import control

    with context(root) as ctx:
        return control.restart(ctx, name, timeout_s=timeout_s).record


def rename(name: str, new_name: str, *, root: Root = None) -> WorkloadRecord:
    """Give a workload another name."""
    from isobox.service import control

    with context(root) as ctx:
        return control.rename(ctx, name, new_name)


def remove(name: str, *, force: bool = False, volumes: bool = False, root: Root = None) -> WorkloadRecord:
    """Remove a workload (``force``: a running one too; ``volumes``: its anonymous volumes too)."""
    from isobox.service import workloads

    with context(root) as ctx:
        return workloads.remove(ctx, name, force=force, volumes=volumes)


def list_workloads(*, all: bool = False, root: Root = None) -> list[WorkloadRecord]:
    """Running workloads (``all``: every one), newest first."""
    from isobox.service import workloads

    with context(root) as ctx:
        return workloads.list_workloads(ctx, all=all)


def inspect(name: str, *, root: Root = None) -> WorkloadRecord:
    """The workload's record, up to date with what the driver sees."""
    from isobox.service import workloads

    with context(root) as ctx:
        return workloads.get(ctx, name)


def wait(name: str, *, timeout_s: float | None = None, root: Root = None) -> WorkloadRecord:
    """Block until the workload is no longer running; its record (exit_code) then."""
    from isobox.service import control

    with context(root) as ctx:
        return control.wait(ctx, name, timeout_s)


def logs(
    name: str, *, since: str | None = None, tail: str | int = "all", follow: bool = False, root: Root = None
) -> Iterator[LogEntry]:
    """The workload's log entries (stream, time, content); ``follow`` goes on until it exits."""
    from isobox.service import logs as log_service

    with context(root) as ctx:
        yield from log_service.read(ctx, name, follow=follow, since=since, tail=str(tail))


def exec(
    name: str,
    command: str | Sequence[str],
    *,
    env: dict[str, str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    root: Root = None,
) -> RunResult:
    """Run a command in a running workload; its exit code, stdout and stderr."""
    from isobox.service import control, workloads

    wanted = ExecSpec(tuple(command_argv(command)), tuple((env or {}).items()), workdir, user)
    with context(root) as ctx:
        record = workloads.get(ctx, name)
        result = _captured(lambda streams: RunResult(record, control.exec(ctx, name, wanted, streams)))
    return result


def attach(name: str, *, stdin: int | None = None, stdout: int = 1, stderr: int = 2, root: Root = None) -> int | None:
    """Join a running workload's output (and stdin, from the fd ``stdin``) until it ends; its exit code."""
    from isobox.service import control

    with context(root) as ctx:
        return control.attach(ctx, name, Attach(stdin=stdin, stdout=stdout, stderr=stderr))


def stats(name: str, *, root: Root = None) -> Stats:
    """CPU time, memory and pids of a running workload (one sample)."""
    from isobox.service import control

    with context(root) as ctx:
        return control.stats(ctx, name)


def top(name: str, *, root: Root = None) -> ProcessTable:
    """The processes of a running workload (a VM's: its guest's)."""
    from isobox.service import control

    with context(root) as ctx:
        return control.top(ctx, name)


def commit(name: str, image: str, *, message: str = "", author: str = "", root: Root = None) -> object:
    """A container's changes, or a stopped VM's disk changes, as a new image (its ImageRecord)."""
    from isobox.service import commit as commit_service

    with context(root) as ctx:
        return commit_service.commit(ctx, name, image, message=message, author=author)
