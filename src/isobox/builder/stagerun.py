"""One stage of a build, step by step: its state (layers, config, history, cache key) and each instruction.

Every step has a cache key (builder/cachekey.py) and is recorded in the cache, a step that changes only
the config too (so a rebuild from the cache records the same history times and gives the same image).
Steps that make a layer, RUN, COPY, ADD and a WORKDIR that creates its directory, reuse the cached layer
when there is one, unless ``--no-cache``. A step that changed no file adds no layer (``empty_layer``
in the history).
"""

from __future__ import annotations

import copy
import posixpath
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isobox.builder import instructions as ins
from isobox.builder.cachekey import stage_key, step_key
from isobox.builder.copy import Download, is_url, plan_copy
from isobox.builder.copylayer import write_copy
from isobox.builder.events import BuildEvent, EventKind
from isobox.builder.imageconfig import ConfigBuilder, run_command
from isobox.builder.mounts import CacheSharing, MountType, NetworkMode, RunMount
from isobox.builder.options import BuildNetwork
from isobox.builder.outcome import BuildCancelledError, BuildStepError, StepError
from isobox.builder.runstep import (
    BindMount,
    CacheMount,
    RunRequest,
    SecretMount,
    TmpfsMount,
    materialize,
    mount_target,
    refuse_unsupported,
)
from isobox.builder.source import DockerfileError
from isobox.builder.stages import BaseKind, SourceRef, StagePlan, Step
from isobox.builder.tree import Entry, LayeredTree
from isobox.errors import InvalidArgumentError, IsoboxError, UnsupportedError
from isobox.images.store import LayerRecord, chain_ids
from isobox.state.build_cache import CacheEntry

if TYPE_CHECKING:
    from isobox.builder.executor import Executor
    from isobox.builder.layertar import TarSink

__all__ = ["StageRunner", "StageState"]

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class StageState:
    key: str
    layers: list[LayerRecord]
    config: ConfigBuilder
    history: list[dict[str, Any]]
    image_id: str  # the base image's id (what a RUN runs on while the stage has no layer of its own)
    base_layers: int = 0  # how many of ``layers`` are that image's
    _tree: LayeredTree | None = field(default=None, repr=False)

    def copy(self) -> StageState:
        return StageState(self.key, list(self.layers), copy.deepcopy(self.config), copy.deepcopy(self.history),
                          self.image_id, self.base_layers)


class StageRunner:
    def __init__(self, build: Executor, stage: StagePlan) -> None:
        self.build = build
        self.stage = stage
        self.number = build.number(stage.index)

    # ---- the stage -----------------------------------------------------------------------------

    def run(self) -> StageState:
        self.build.check_cancelled()
        started = time.monotonic()
        self._event(EventKind.STEP, self.stage.origin.text)
        self.state = self._start()
        self._event(EventKind.DONE, duration_s=time.monotonic() - started)
        for step in self.stage.steps:
            self.build.check_cancelled()
            self.number += 1
            started = time.monotonic()
            self._event(EventKind.STEP, step.source.origin.text)
            try:
                layer = self._step(step)
            except (DockerfileError, BuildStepError, BuildCancelledError):
                raise
            except (InvalidArgumentError, UnsupportedError) as exc:
                raise DockerfileError.at(step.source.origin, exc.message, op="build") from exc
            except IsoboxError as exc:
                raise StepError(step.source.origin, exc) from exc
            self._event(EventKind.DONE, duration_s=time.monotonic() - started,
                        layer=layer.digest.split(":", 1)[-1][:12] if layer else "")
        return self.state

    def _event(self, kind: EventKind, text: str = "", **extra: Any) -> None:
        self.build.emit(BuildEvent(kind, self.number, self.build.total, self.stage.label, text, **extra))

    def _start(self) -> StageState:
        base, epoch = self.stage.base, self.build.epoch
        if base.kind is BaseKind.STAGE:
            assert base.stage is not None
            state: StageState = self.build.results[base.stage].copy()
            state.config = ConfigBuilder.from_base(state.config.config, state.config.author)
            return state
        if base.kind is BaseKind.SCRATCH:
            return StageState(stage_key("scratch", epoch=epoch), [], ConfigBuilder.from_base(None), [], "")
        image = self.build.base(base.image, base.platform)
        document = image.document
        key = stage_key(f"image {image.id} {base.platform or self.build.platform}", epoch=epoch)
        history = [dict(item) for item in document.get("history") or [] if isinstance(item, dict)]
        config = ConfigBuilder.from_base(document.get("config"), str(document.get("author") or ""))
        return StageState(key, list(image.layers), config, history, image.id, len(image.layers))

    def tree(self) -> LayeredTree | None:
        if not self.state.layers:
            return None
        if self.state._tree is None:
            self.state._tree = self.build.tree(self.state.layers, f"stage {self.stage.label}")
        return self.state._tree

    # ---- one step ------------------------------------------------------------------------------

    def _step(self, step: Step) -> LayerRecord | None:
        instruction = step.instruction
        if isinstance(instruction, ins.Arg):
            return None
        if isinstance(instruction, ins.Run):
            return self._run(step, instruction)
        if isinstance(instruction, ins.Copy | ins.Add):
            return self._copy(step, instruction)
        self.state.config.apply(instruction)
        if isinstance(instruction, ins.Workdir):
            missing = self._missing_dirs(self.state.config.workdir)
            if missing:
                return self._layer_step(step, step_key(self.state.key, step), lambda sink: self._mkdirs(sink, missing))
        self._config_step(step)
        return None

    def _config_step(self, step: Step) -> None:
        key = step_key(self.state.key, step)
        hit = self.build.host.cached(key)
        created = hit.created if hit is not None else self.build.created()
        if hit is None:
            self.build.host.remember(CacheEntry(key, "", "", "", 0, "", created))
        self._history(step, created, empty=True)
        self.state.key = key

    def _history(self, step: Step, created: str, *, empty: bool) -> None:
        entry: dict[str, Any] = {"created": created, "created_by": step.source.origin.text}
        if empty:
            entry["empty_layer"] = True
        self.state.history.append(entry)

    def _layer_step(self, step: Step, key: str, produce: Callable[[TarSink], None]) -> LayerRecord | None:
        hit = None if self.build.options.no_cache else self.build.host.cached(key)
        if hit is not None:
            self.build.count_cached()
            self._event(EventKind.CACHED)
            return self._add(step, key, hit, hit.created)
        from isobox.builder.layertar import TarSink  # tarfile: only for steps that are built

        tar = self.build.host.scratch / f"layer-{uuid.uuid4().hex}.tar"
        sink = TarSink(tar, epoch=self.build.epoch)
        try:
            produce(sink)
            diff_id = sink.close()
        except BaseException:
            sink.abort()
            raise
        created = self.build.created()
        try:
            if sink.entries == 0:
                entry = CacheEntry(key, "", "", "", 0, "", created)
                self.build.host.remember(entry)
            else:
                entry = self.build.host.store_layer(tar, diff_id, self.state.layers, key, created)
        finally:
            tar.unlink(missing_ok=True)
        return self._add(step, key, entry, created)

    def _add(self, step: Step, key: str, entry: CacheEntry, created: str) -> LayerRecord | None:
        self.state.key = key
        if not entry.has_layer:
            self._history(step, created, empty=True)
            return None
        chain = chain_ids([layer.diff_id for layer in self.state.layers] + [entry.diff_id])[-1]
        layer = LayerRecord(entry.digest, entry.diff_id, chain, entry.size, entry.media_type or LAYER_TYPE)
        self.state.layers.append(layer)
        self.state._tree = None
        self._history(step, created, empty=False)
        return layer

    # ---- WORKDIR -------------------------------------------------------------------------------

    def _missing_dirs(self, path: str) -> list[str]:
        tree = self.tree()
        parts = [part for part in path.split("/") if part]
        prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
        if tree is None:
            return prefixes
        found = tree.resolve("/".join(parts))
        return [] if found is not None and found.is_dir else prefixes

    def _mkdirs(self, sink: TarSink, paths: list[str]) -> None:
        from isobox.builder.layertar import dir_info

        tree = self.tree()
        mtime = self.build.epoch if self.build.epoch is not None else int(time.time())
        for path in paths:
            found = tree.resolve(path, follow=False) if tree is not None else None
            if found is not None and found.is_symlink:
                raise InvalidArgumentError(f"WORKDIR {path!r} is a symbolic link in the image: name its target",
                                           op="build")
            if found is not None and found.is_dir:
                info = found.info
                sink.add(dir_info(path, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, int(info.st_mtime)))
            else:
                sink.add(dir_info(path, 0o755, 0, 0, mtime))

    # ---- COPY, ADD -----------------------------------------------------------------------------

    def _source(self, step: Step, name: str) -> tuple[LayeredTree, bool, str]:
        """The tree a --from (or the context, for "") names, whether it is the context, and its key."""
        if not name:
            return self.build.context.tree, True, ""
        ref = next((ref for ref in step.refs if ref.text == name), SourceRef(name, None))
        if ref.stage is not None:
            state = self.build.results[ref.stage]
            return self.build.tree(state.layers, f"stage {name}"), False, state.key
        image = self.build.base(name, None)
        return self.build.tree(image.layers, f"image {name}"), False, image.id

    def _copy(self, step: Step, instruction: ins.Copy | ins.Add) -> LayerRecord | None:
        source, from_context, from_key = self._source(step, getattr(instruction, "from_", ""))
        image = self.tree()
        workdir = self.state.config.workdir
        plan = plan_copy(instruction, workdir=workdir, source=source, from_context=from_context, image=image)
        inputs: dict[str, Any] = {"files": self.build.context.digest(plan.inputs)} if from_context else {
            "from": from_key}
        urls = [text for text in instruction.sources if is_url(text)]
        downloads: tuple[Download, ...] = ()
        checksum = instruction.checksum if isinstance(instruction, ins.Add) else ""
        if urls and checksum:
            inputs["urls"] = [[url, checksum] for url in urls]
        elif urls:
            downloads = tuple(self.build.host.fetch(url, "") for url in urls)
            inputs["urls"] = [[item.url, item.digest] for item in downloads]

        def produce(sink: TarSink) -> None:
            fetched = downloads or tuple(self.build.host.fetch(url, checksum) for url in urls)
            final = plan_copy(instruction, workdir=workdir, source=source, from_context=from_context, image=image,
                              downloads=fetched) if fetched else plan
            write_copy(final, sink, image=image, scratch=self.build.host.scratch, policy=self.build.policy,
                       epoch=self.build.epoch)

        try:
            return self._layer_step(step, step_key(self.state.key, step, inputs), produce)
        finally:
            for item in downloads:
                item.path.unlink(missing_ok=True)

    # ---- RUN -----------------------------------------------------------------------------------

    def _run(self, step: Step, run: ins.Run) -> LayerRecord | None:
        if run.security.value != "sandbox":
            raise UnsupportedError("RUN --security=insecure is not supported by isobox build", op="build")
        if run.network is NetworkMode.HOST:
            raise UnsupportedError("RUN --network=host is not supported by isobox build (use default or none)",
                                   op="build")
        binds: list[tuple[str, LayeredTree, Entry, bool]] = []
        inputs: dict[str, Any] = {}
        for mount in run.mounts:
            refuse_unsupported(mount)
            if mount.type is MountType.BIND:
                target = mount_target(mount, self.state.config.workdir)
                tree, found, inputs[f"bind {target}"] = self._bind_source(step, mount)
                binds.append((target, tree, found, mount.readonly))

        def produce(sink: TarSink) -> None:
            scratch = Path(tempfile.mkdtemp(dir=self.build.host.scratch, prefix="run-"))
            try:
                made = tuple(BindMount(target, materialize(tree, found, scratch / f"bind-{index}", readonly=readonly),
                                       readonly) for index, (target, tree, found, readonly) in enumerate(binds))
                self._execute(step, self._request(step, run, made), sink)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

        return self._layer_step(step, step_key(self.state.key, step, inputs), produce)

    def _execute(self, step: Step, request: RunRequest, sink: TarSink) -> None:
        runner = self

        class Events:
            def started(self, workload: str) -> None:
                runner._event(EventKind.RUNNING, workload=workload)

            def line(self, text: str) -> None:
                runner._event(EventKind.OUTPUT, text)

        outcome = self.build.host.run(request, Events())
        if outcome.exit_code != 0 or outcome.diff is None:
            raise BuildStepError(step.source.origin, outcome.exit_code, outcome.last_lines)
        from isobox.builder.layertar import normalize_diff

        try:
            normalize_diff(outcome.diff, sink, mounts=outcome.mounted, holders=self._holders(outcome.mounted))
        finally:
            outcome.diff.unlink(missing_ok=True)

    def _holders(self, mounted: frozenset[str]) -> Mapping[str, tuple[int, int, int] | None]:
        """The directories above each mount point, as the image had them (None: it had none)."""
        tree = self.tree()
        holders: dict[str, tuple[int, int, int] | None] = {}
        for path in mounted:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                holder = "/".join(parts[:depth])
                found = tree.resolve(holder, follow=False) if tree is not None else None
                if found is None:
                    holders[holder] = None
                elif found.is_dir:
                    info = found.info
                    holders[holder] = (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
        return holders

    def _request(self, step: Step, run: ins.Run, binds: tuple[BindMount, ...]) -> RunRequest:
        config = self.state.config
        command = run_command(run, config.shell)
        env = dict(config.env())
        for name, value in (*step.build_args, *self.build.proxy_env):
            env.setdefault(name, value)
        caches, tmpfs, secrets = [], [], []
        for mount in run.mounts:
            target = mount_target(mount, config.workdir)
            if mount.type is MountType.CACHE:
                caches.append(CacheMount(target, mount.id or target, mount.sharing or CacheSharing.SHARED,
                                         mount.readonly, 0o755 if mount.mode is None else mount.mode,
                                         mount.uid or 0, mount.gid or 0))
            elif mount.type is MountType.TMPFS:
                tmpfs.append(TmpfsMount(target, mount.size_bytes))
            elif mount.type is MountType.SECRET:
                secrets.append(SecretMount(target, mount.id or posixpath.basename(mount.source or target),
                                           mount.required, 0o400 if mount.mode is None else mount.mode,
                                           mount.uid or 0, mount.gid or 0))
        none = run.network is NetworkMode.NONE or self.build.options.network is BuildNetwork.NONE
        state = self.state
        image_id = state.image_id if len(state.layers) == state.base_layers else state.layers[-1].chain_id
        script = (command.script_name, command.script) if command.script_name else None
        return RunRequest(f"{step.source.origin} {step.source.origin.text}", command.argv, tuple(env.items()),
                          config.workdir, config.user, tuple(state.layers), image_id,
                          NetworkMode.NONE if none else NetworkMode.DEFAULT, binds, tuple(caches), tuple(tmpfs),
                          tuple(secrets), script)

    def _bind_source(self, step: Step, mount: RunMount) -> tuple[LayeredTree, Entry, str]:
        """What a bind mount shows, and its part of the cache key (the files' digest, or the source's key)."""
        tree, from_context, key = self._source(step, mount.from_)
        path = mount.source or "."
        if from_context and (path.startswith("/") or ".." in path.split("/")):
            raise InvalidArgumentError(f"--mount {mount.text!r}: the source must be a path inside the build "
                                       "context (not absolute, no '..')", op="build")
        found = tree.resolve(path.lstrip("/"))
        if found is None:
            raise InvalidArgumentError(f"--mount {mount.text!r}: {path} does not exist in {tree.what}", op="build")
        if from_context:
            entries = [("", found)] + ([(child.path, child) for child in tree.walk(found)] if found.is_dir else [])
            key = self.build.context.digest(entries)
        return tree, found, key
