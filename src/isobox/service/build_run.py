"""A RUN step of `isobox build` as a workload like any other: created and started through service/workloads.py
(the same secure defaults as `isobox run`), as a container or, with ``--vm``, as a VM, on the layers the
stage has so far; its changes taken with the driver's ``commit_layer`` (what `isobox commit` uses: a
container's overlay upper directory, a VM's disk compared with its base), then removed.

Each step's workload carries the label ``isobox.build`` (the build's id), so the leftovers of a build that
was killed (``kill -9``: no Python code ran to clean up) are found and removed by the next build and by
`system prune` (service/build.py ``sweep``). Its mounts: bind mounts prepared by the executor, cache
directories under LIB/build-cache/mounts (locked while a step uses one with ``sharing=locked`` or
``private``), tmpfs, and secrets copied into the build's private directory with the mode and owner the
mount asks for (for a VM, whose bind mounts are directories, they share one directory at /run/secrets).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from isobox.builder.executor import RunEvents
from isobox.builder.imageconfig import HEREDOC_DIR
from isobox.builder.mounts import CacheSharing, NetworkMode
from isobox.builder.outcome import BuildCancelledError
from isobox.builder.runstep import SECRETS_DIR, RunOutcome, RunRequest
from isobox.errors import CommandError, InvalidArgumentError, NotFoundError
from isobox.model.image_config import ImageConfig
from isobox.model.mounts import MountKind, MountSpec
from isobox.model.spec import Kind, WorkloadSpec
from isobox.model.streams import Attach
from isobox.service import workloads
from isobox.service.build import BUILD_LABEL, STEP_LABEL, cache_mounts_dir
from isobox.service.commit import RUNTIME_MOUNTS
from isobox.service.context import Context
from isobox.service.planning import ResolvedImage
from isobox.state.locks import locked

log = logging.getLogger(__name__)

LAST_LINES = 20


@dataclass
class StepRunner:
    """Runs the RUN steps of one build; ``cancel`` (from another thread) kills the ones running."""

    ctx: Context
    build_id: str
    kind: Kind
    scratch: Path
    secrets: Mapping[str, Path]
    _active: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
        with self._lock:
            active = list(self._active)
        for workload_id in active:
            try:
                workloads.remove(self.ctx, workload_id, force=True)
            except Exception as exc:  # the step's own clean-up removes it again; cancel the others meanwhile
                log.warning("cannot stop build step %s: %s", workload_id, exc)

    def _name(self) -> str:
        with self._lock:
            self._count += 1
            return f"build-{self.build_id[:12]}-{self._count}"

    def run(self, request: RunRequest, layers: tuple[str, ...], events: RunEvents) -> RunOutcome:
        with ExitStack() as stack:
            step_dir = Path(tempfile.mkdtemp(dir=self.scratch, prefix="step-"))
            stack.callback(shutil.rmtree, step_dir, True)
            mounts = self._mounts(request, step_dir, stack)
            spec = WorkloadSpec(
                image=f"isobox-build:{self.build_id[:12]}", command=request.argv, entrypoint=(), kind=self.kind,
                name=self._name(), env=request.env, workdir=request.workdir, user=request.user,
                labels=((BUILD_LABEL, self.build_id), (STEP_LABEL, request.step)), mounts=tuple(mounts),
                networks=("none",) if request.network is NetworkMode.NONE else (),
            )
            image = ResolvedImage(request.image_id, layers, ImageConfig(workdir=request.workdir))
            record = workloads.create(self.ctx, spec, image=image)
            with self._lock:
                self._active.add(record.id)
            stack.callback(self._forget, record.id)
            if self.cancelled:  # cancel() ran while the workload was being created: it did not see it
                raise BuildCancelledError()
            events.started(record.id)
            exit_code, lines = self._attached(record.id, events)
            targets = RUNTIME_MOUNTS | {mount.target for mount in mounts}
            mounted = frozenset(path.lstrip("/") for path in targets)
            if self.cancelled:
                raise BuildCancelledError()
            if exit_code != 0:
                return RunOutcome(exit_code, None, mounted, lines, record.id)
            return RunOutcome(0, self._diff(record.id, frozenset(targets)), mounted, lines, record.id)

    def _diff(self, workload_id: str, skip: frozenset[str]) -> Path:
        """The step's changes as a layer tar (the driver's commit_layer), in the build's directory."""
        fd, name = tempfile.mkstemp(dir=self.scratch, prefix="diff-", suffix=".tar")
        try:
            with os.fdopen(fd, "wb") as out:
                workloads.driver_for(self.ctx, self.kind).commit_layer(workloads.get(self.ctx, workload_id), out, skip)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def _forget(self, workload_id: str) -> None:
        with self._lock:
            self._active.discard(workload_id)
        try:
            workloads.remove(self.ctx, workload_id, force=True)
        except NotFoundError:
            pass  # removed by cancel() already

    def _attached(self, workload_id: str, events: RunEvents) -> tuple[int, tuple[str, ...]]:
        """Start the step with its output in a pipe, each line passed on; (exit code, last lines)."""
        read_fd, write_fd = os.pipe()
        lines: collections.deque[str] = collections.deque(maxlen=LAST_LINES)
        reader = threading.Thread(target=_read_lines, args=(read_fd, lines, events), name="isobox-build-output")
        reader.start()
        try:
            result = workloads.start(self.ctx, workload_id, attach=Attach(stdin=None, stdout=write_fd,
                                                                          stderr=write_fd))
            code = result.exit_code if result.exit_code is not None else 1
        except CommandError as exc:
            code = exc.exit_code
            lines.append(exc.message)
        finally:
            os.close(write_fd)
            reader.join()
        return code, tuple(lines)

    # ---- mounts --------------------------------------------------------------------------------

    def _mounts(self, request: RunRequest, step_dir: Path, stack: ExitStack) -> list[MountSpec]:
        mounts = [MountSpec(MountKind.BIND, bind.target, str(bind.source), bind.readonly) for bind in request.binds]
        for cache in request.caches:
            directory = self._cache_dir(cache.id, cache.mode, cache.uid, cache.gid)
            if cache.sharing is not CacheSharing.SHARED:
                stack.enter_context(locked(self.ctx.paths.locks, f"build-cache-{directory.name}"))
            mounts.append(MountSpec(MountKind.BIND, cache.target, str(directory), cache.readonly))
        for tmpfs in request.tmpfs:
            options = (f"size={tmpfs.size_bytes}",) if tmpfs.size_bytes else ()
            mounts.append(MountSpec(MountKind.TMPFS, tmpfs.target, tmpfs_options=options))
        mounts += self._secrets(request, step_dir)
        if request.script is not None:
            name, text = request.script
            pipes = step_dir / "pipes"
            pipes.mkdir(mode=0o755)
            (pipes / name).write_bytes(text)
            (pipes / name).chmod(0o755)
            mounts.append(MountSpec(MountKind.BIND, HEREDOC_DIR, str(pipes), True))
        return mounts

    def _cache_dir(self, cache_id: str, mode: int, uid: int, gid: int) -> Path:
        directory = cache_mounts_dir(self.ctx) / hashlib.sha256(cache_id.encode()).hexdigest()[:32]
        if not directory.is_dir():
            directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=mode)
                os.chown(directory, uid, gid)
                os.chmod(directory, mode)
        return directory

    def _secrets(self, request: RunRequest, step_dir: Path) -> list[MountSpec]:
        if not request.secrets:
            return []
        holder = step_dir / "secrets"
        holder.mkdir(mode=0o755)
        mounts = []
        for secret in request.secrets:
            source = self.secrets.get(secret.id)
            if source is None:
                if secret.required:
                    raise InvalidArgumentError(f"secret {secret.id!r} is required: give it with --secret "
                                               f"id={secret.id},src=PATH", op="build")
                continue
            if self.kind is Kind.VM and os.path.dirname(secret.target) != SECRETS_DIR:
                raise InvalidArgumentError(f"secret {secret.id!r}: a VM build shows secrets in {SECRETS_DIR} only "
                                           f"(not at {secret.target})", op="build")
            copy = holder / (os.path.basename(secret.target) if self.kind is Kind.VM else secret.id)
            shutil.copyfile(source, copy)
            os.chown(copy, secret.uid, secret.gid)
            os.chmod(copy, secret.mode)
            if self.kind is not Kind.VM:
                mounts.append(MountSpec(MountKind.BIND, secret.target, str(copy), True))
        if self.kind is Kind.VM and any(holder.iterdir()):
            mounts.append(MountSpec(MountKind.BIND, SECRETS_DIR, str(holder), True))
        return mounts


def _read_lines(fd: int, lines: collections.deque[str], events: RunEvents) -> None:
    with os.fdopen(fd, "rb") as stream:
        for raw in stream:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            try:
                events.line(text)
            except Exception:  # a display that failed must not stop the step's output from draining
                log.debug("build output callback failed", exc_info=True)

