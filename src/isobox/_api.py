"""The public Python API: every operation the CLI offers, as plain functions.

Each function opens the state (``root`` or ISOBOX_ROOT or the system default) and calls service/;
the CLI calls the same service functions, so the two can never drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from isobox.drivers.base import Attach, ExecSpec
from isobox.drivers.logfile import LogEntry
from isobox.images.store import ImageRecord
from isobox.model.record import Stats, WorkloadRecord
from isobox.model.spec import Kind, Resources, Restart, Security, WorkloadSpec
from isobox.service.context import Context, open_context

Workload = WorkloadRecord
Image = ImageRecord


@dataclass(frozen=True)
class RunResult:
    workload: WorkloadRecord
    exit_code: int | None
    stdout: bytes = b""
    stderr: bytes = b""


def _ctx(root: str | os.PathLike[str] | None) -> Context:
    return open_context(root)


def spec(
    image: str,
    command: Sequence[str] = (),
    *,
    vm: bool | None = None,
    name: str | None = None,
    env: dict[str, str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    entrypoint: Sequence[str] | None = None,
    remove: bool = False,
    memory_bytes: int | None = None,
    cpus: float | None = None,
    pids_limit: int | None = None,
    privileged: bool = False,
    cap_add: Sequence[str] = (),
    cap_drop: Sequence[str] = (),
    restart: str = "no",
    volumes: Sequence[str] = (),
    **more: Any,
) -> WorkloadSpec:
    """A WorkloadSpec from keyword arguments named like the CLI flags (vm=None: the policy decides);
    ``volumes`` are -v values ("data:/data", "/host/dir:/dir:ro", "/anonymous")."""
    from isobox.model.mounts import parse_volume

    if volumes:
        more["mounts"] = (*more.get("mounts", ()), *(parse_volume(v) for v in volumes))
    return WorkloadSpec(
        image=image,
        command=tuple(command),
        kind=Kind.VM if vm else Kind.CONTAINER,
        kind_by_policy=vm is None,  # neither vm=True nor vm=False: the isolation policy decides
        name=name,
        env=tuple((env or {}).items()),
        workdir=workdir,
        user=user,
        entrypoint=None if entrypoint is None else tuple(entrypoint),
        remove=remove,
        resources=Resources(memory_bytes=memory_bytes, cpus=cpus, pids_limit=pids_limit),
        security=Security(privileged=privileged, cap_add=tuple(cap_add), cap_drop=tuple(cap_drop)),
        restart=Restart.parse(restart),
        **more,
    )


def run(
    image: str, command: Sequence[str] = (), *, detach: bool = False, root: str | None = None, **options: Any
) -> RunResult:
    """Run a workload. In the foreground, returns its exit code and captured stdout/stderr."""
    from isobox.service import workloads

    ctx = _ctx(root)
    wanted = spec(image, command, **options)
    if detach:
        result = workloads.run(ctx, wanted, detach=True)
        return RunResult(result.record, None)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    import threading

    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}

    def drain(fd: int) -> None:
        while data := os.read(fd, 65536):
            chunks[fd].append(data)
        os.close(fd)

    readers = [threading.Thread(target=drain, args=(fd,)) for fd in (out_r, err_r)]
    for reader in readers:
        reader.start()
    try:
        result = workloads.run(ctx, wanted, attach=Attach(stdin=None, stdout=out_w, stderr=err_w))
    finally:
        os.close(out_w)
        os.close(err_w)
        for reader in readers:
            reader.join()
    return RunResult(result.record, result.exit_code, b"".join(chunks[out_r]), b"".join(chunks[err_r]))


def create(image: str, command: Sequence[str] = (), *, root: str | None = None, **options: Any) -> WorkloadRecord:
    from isobox.service import workloads

    return workloads.create(_ctx(root), spec(image, command, **options))


def start(name: str, *, root: str | None = None) -> WorkloadRecord:
    from isobox.service import workloads

    return workloads.start(_ctx(root), name).record


def stop(name: str, *, timeout_s: float | None = None, root: str | None = None) -> WorkloadRecord:
    from isobox.service import workloads

    return workloads.stop(_ctx(root), name, timeout_s=timeout_s)


def kill(name: str, signal: str | int = "KILL", *, root: str | None = None) -> WorkloadRecord:
    from isobox.model.plan import parse_signal
    from isobox.service import workloads

    return workloads.kill(_ctx(root), name, parse_signal(signal))


def pause(name: str, *, root: str | None = None) -> WorkloadRecord:
    from isobox.service import workloads

    return workloads.pause(_ctx(root), name)


def unpause(name: str, *, root: str | None = None) -> WorkloadRecord:
    from isobox.service import workloads

    return workloads.unpause(_ctx(root), name)


def restart(name: str, *, root: str | None = None) -> WorkloadRecord:
    from isobox.service import workloads

    return workloads.restart(_ctx(root), name).record


def remove(name: str, *, force: bool = False, root: str | None = None) -> WorkloadRecord:
    from isobox.service import workloads

    return workloads.remove(_ctx(root), name, force=force)


def list_workloads(*, all: bool = False, root: str | None = None) -> list[WorkloadRecord]:
    from isobox.service import workloads

    return workloads.list_workloads(_ctx(root), all=all)


def inspect(name: str, *, root: str | None = None) -> WorkloadRecord:
    from isobox.service import workloads

    return workloads.get(_ctx(root), name)


def wait(name: str, *, timeout_s: float | None = None, root: str | None = None) -> WorkloadRecord:
    from isobox.service import workloads

    return workloads.wait(_ctx(root), name, timeout_s)


def logs(
    name: str, *, since: str | None = None, tail: str = "all", follow: bool = False, root: str | None = None
) -> Iterator[LogEntry]:
    from isobox.service import logs as log_service

    return log_service.read(_ctx(root), name, follow=follow, since=since, tail=tail)


def exec(
    name: str,
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    root: str | None = None,
) -> int:
    """Run a command in a running workload with this process's stdio; returns its exit code."""
    from isobox.service import workloads

    return workloads.exec(_ctx(root), name, ExecSpec(tuple(command), tuple((env or {}).items()), workdir, user))


def stats(name: str, *, root: str | None = None) -> Stats:
    from isobox.service import workloads

    return workloads.stats(_ctx(root), name)


def top(name: str, *, root: str | None = None) -> list[tuple[int, str]]:
    from isobox.service import workloads

    return workloads.top(_ctx(root), name)


def images(*, root: str | None = None) -> list[tuple[ImageRecord, list[str]]]:
    return _ctx(root).images.list()


def pull(reference: str, *, root: str | None = None, **options: Any) -> ImageRecord:
    from isobox.service import images as image_service

    return image_service.pull(_ctx(root), reference, **options)


def remove_image(reference: str, *, force: bool = False, root: str | None = None) -> list[str]:
    return _ctx(root).images.remove(reference, force=force)


def tag(source: str, target: str, *, root: str | None = None) -> None:
    _ctx(root).images.tag(source, target)


def compare(
    image: str, command: Sequence[str] = (), *, runs: int = 3, warmup: int = 1, root: str | None = None, **options: Any
) -> Any:
    """Run the workload as a container and as a VM and measure both (see `isobox compare`)."""
    from isobox.service import compare as compare_service

    return compare_service.compare(_ctx(root), spec(image, command, **options), runs=runs, warmup=warmup)


def explain(image: str, command: Sequence[str] = (), *, root: str | None = None, **options: Any) -> Any:
    """Which isolation-policy rule decides for this workload, and why."""
    from isobox.service import policy

    return policy.explain(_ctx(root), spec(image, command, **options))


def scan(image: str, *, root: str | None = None) -> Any:
    """The image's risk report (root user, setuid files, world-writable paths, secrets, packages)."""
    from isobox.service import policy

    ctx = _ctx(root)
    return policy.scan_image(ctx, policy.image_record(ctx, image), image)


# ---- volumes, commit, snapshots --------------------------------------------------------------------


def volume_create(name: str | None = None, *, options: Sequence[str] = (), root: str | None = None) -> Any:
    """A named volume: a directory shared by containers and VMs, or with ``options=["type=disk",
    "size=2g"]`` an ext4 disk volume for VMs."""
    from isobox.service import volumes

    return volumes.create(_ctx(root), name, tuple(options))


def volumes(*, root: str | None = None) -> list[Any]:
    from isobox.service import volumes as volume_service

    return volume_service.list_volumes(_ctx(root))


def volume_remove(name: str, *, force: bool = False, root: str | None = None) -> None:
    from isobox.service import volumes as volume_service

    volume_service.remove(_ctx(root), name, force=force)


def volume_resize(name: str, size: str, *, root: str | None = None) -> Any:
    """Grow a disk volume (no running workload may use it)."""
    from isobox.service import volumes as volume_service

    return volume_service.resize(_ctx(root), name, size)


def commit(name: str, image: str, *, message: str = "", author: str = "", root: str | None = None) -> ImageRecord:
    """A container's changes, or a stopped VM's disk changes, as a new image."""
    from isobox.service import commit as commit_service

    return commit_service.commit(_ctx(root), name, image, message=message, author=author)


def snapshot_create(name: str, snapshot: str, *, root: str | None = None) -> Any:
    """A VM's disk (and memory while it runs); a container's writable layer (and its processes while
    it runs, where CRIU works)."""
    from isobox.service import snapshots

    return snapshots.create(_ctx(root), name, snapshot)


def snapshots(name: str, *, root: str | None = None) -> list[Any]:
    from isobox.service import snapshots as snapshot_service

    return snapshot_service.list_snapshots(_ctx(root), name)


def snapshot_restore(name: str, snapshot: str, *, root: str | None = None) -> WorkloadRecord:
    from isobox.service import snapshots as snapshot_service

    return snapshot_service.restore(_ctx(root), name, snapshot)


def snapshot_remove(name: str, snapshot: str, *, root: str | None = None) -> None:
    from isobox.service import snapshots as snapshot_service

    snapshot_service.remove(_ctx(root), name, snapshot)
