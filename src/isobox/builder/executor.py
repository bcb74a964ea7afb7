"""The executor of `isobox build`: a BuildPlan run against a host, stage by stage, with the build cache.

    Executor(dockerfile, context, options, host, progress=…).run() → BuildResult

The executor decides everything that is about the Dockerfile: the order (the plan's groups: stages of a
group build side by side, each in a thread of its own), the cache keys (builder/cachekey.py), the image
config and history, COPY and ADD layers (builder/copy.py), RUN commands and their mounts. The host
(``BuildHost``, service/build.py) does what touches isobox's state: images, the layer store, the cache
records and the workloads RUN steps run in. A stage's steps are in builder/stagerun.py.

Interruption: the calling thread only waits for the stages. Ctrl-C there (KeyboardInterrupt), a
``cancel`` event set by someone else, or the failure of one stage, stops the build: the host's running
steps are killed, the other stages stop before their next step, and the first error is raised (for an
interruption, BuildCancelledError). Nothing is tagged unless the whole build succeeds.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from isobox.builder.context import BuildContext
from isobox.builder.copy import Download
from isobox.builder.events import BuildEvent, EventKind, ProgressFn
from isobox.builder.options import EPOCH_ARG, BuildOptions, source_date_epoch
from isobox.builder.outcome import BuildCancelledError, BuildResult, StepError
from isobox.builder.runstep import RunOutcome, RunRequest
from isobox.builder.source import DockerfileError
from isobox.builder.stages import BaseImage, BaseKind, BuildPlan, plan
from isobox.builder.tree import Escape, LayeredTree
from isobox.errors import InvalidArgumentError, IsoboxError
from isobox.images import platform as platforms
from isobox.images.layer_limits import UnpackPolicy
from isobox.images.platform import Platform
from isobox.images.store import LayerRecord
from isobox.state.build_cache import CacheEntry

if TYPE_CHECKING:
    from isobox.builder.dockerfile import Dockerfile

__all__ = ["BaseState", "BuildHost", "Executor", "RunEvents"]

WAIT_S = 0.2  # how often the waiting thread looks at the cancel event


@dataclass(frozen=True)
class BaseState:
    """An image a build reads (a base, or a COPY --from source): its id, layers and config document."""

    id: str
    layers: tuple[LayerRecord, ...]
    document: dict[str, Any]


class RunEvents(Protocol):
    def started(self, workload: str) -> None: ...

    def line(self, text: str) -> None: ...


class BuildHost(Protocol):
    scratch: Path  # the build's private directory

    def base_image(self, reference: str, platform: Platform) -> BaseState: ...

    def layer_dirs(self, layers: Sequence[LayerRecord]) -> list[Path]:
        """The unpacked directory of each layer (unpacked again from its blob if it was removed)."""
        ...

    def cached(self, key: str) -> CacheEntry | None:
        """The cache entry of ``key`` if it is usable (its layer still in the store)."""
        ...

    def remember(self, entry: CacheEntry) -> None:
        """Record the cache entry of a step that made no layer."""
        ...

    def store_layer(self, tar: Path, diff_id: str, parents: Sequence[LayerRecord], key: str,
                    created: str) -> CacheEntry:
        """Store a layer tar (blob, unpacked directory) on top of ``parents``, and record its cache entry."""
        ...

    def run(self, request: RunRequest, events: RunEvents) -> RunOutcome: ...

    def fetch(self, url: str, checksum: str) -> Download: ...

    def commit(self, document: dict[str, Any], layers: Sequence[LayerRecord], tags: Sequence[str]) -> str:
        """Record the image and tag it (all at once); its id."""
        ...

    def cancel(self) -> None:
        """Kill the RUN steps running now (called from another thread)."""
        ...


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Executor:
    dockerfile: Dockerfile
    context: BuildContext
    options: BuildOptions
    host: BuildHost
    progress: ProgressFn | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.epoch = source_date_epoch(self.options.args)
        self.platform = _platform(self.options.platform)
        self.policy = UnpackPolicy.from_env()
        self.results: dict[int, Any] = {}  # stage index → its final StageState
        self.cached_steps = 0
        self.warnings: list[str] = []
        self._bases: dict[tuple[str, Platform], BaseState] = {}
        self._lock = threading.Lock()
        self._numbers: dict[int, int] = {}
        self.total = 0
        self.proxy_env: tuple[tuple[str, str], ...] = ()
        self._empty: Path | None = None

    # ---- shared with the stages ----------------------------------------------------------------

    def emit(self, event: BuildEvent) -> None:
        if self.progress is not None:
            with self._lock:
                self.progress(event)

    def count_cached(self) -> None:
        with self._lock:
            self.cached_steps += 1

    def created(self) -> str:
        return rfc3339(self.epoch if self.epoch is not None else time.time())

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise BuildCancelledError()

    def base(self, reference: str, platform: Platform | None) -> BaseState:
        wanted = platform or self.platform
        if not platforms.host().matches(wanted):
            raise InvalidArgumentError(f"platform {wanted} is not this host's ({platforms.host()}): isobox builds "
                                       "for the host's platform only", op="build")
        key = (reference, wanted)
        with self._lock:
            found = self._bases.get(key)
        if found is None:
            found = self.host.base_image(reference, wanted)
            with self._lock:
                self._bases[key] = found
        return found

    def bases(self) -> list[tuple[tuple[str, Platform], BaseState]]:
        """Every image the build read, by reference and platform."""
        with self._lock:
            return list(self._bases.items())

    def tree(self, layers: Sequence[LayerRecord], what: str) -> LayeredTree:
        """The merged file system of ``layers`` (an empty one for none)."""
        if not layers:
            if self._empty is None:
                self._empty = self.host.scratch / "empty"
                self._empty.mkdir(mode=0o755, exist_ok=True)
            return LayeredTree([self._empty], escape=Escape.SCOPE, what=what)
        return LayeredTree(self.host.layer_dirs(layers), escape=Escape.SCOPE, what=what)

    def number(self, stage: int) -> int:
        return self._numbers[stage]

    # ---- the build -----------------------------------------------------------------------------

    def _base_lookup(self, reference: str, platform: Platform | None) -> BaseImage:
        config = self.base(reference, platform).document.get("config") or {}
        env = tuple((key, value) for key, _, value in (item.partition("=") for item in config.get("Env") or []))
        return BaseImage(env=env, onbuild=tuple(str(item) for item in config.get("OnBuild") or []))

    def make_plan(self) -> BuildPlan:
        args, target = self.options.args, self.options.target
        first = plan(self.dockerfile, build_args=args, target=target, platform=self.platform)
        for stage in first.stages:
            if stage.base.platform is not None and not platforms.host().matches(stage.base.platform):
                raise DockerfileError.at(stage.origin, f"FROM --platform={stage.base.platform}: isobox builds for "
                                         f"this host's platform ({platforms.host()}) only", op="plan build")
            image = stage.base.kind is BaseKind.IMAGE
            wanted = [(stage.base.image, stage.base.platform, stage.origin)] if image else []
            wanted += [(ref.text, None, step.source.origin) for step in stage.steps for ref in step.refs
                       if ref.stage is None]
            for reference, platform, origin in wanted:  # fetched now, so a failure names its line
                try:
                    self.base(reference, platform)
                except IsoboxError as exc:
                    raise StepError(origin, exc) from exc
        return plan(self.dockerfile, build_args=args, target=target, platform=self.platform,
                    base_image=self._base_lookup)

    def run(self) -> BuildResult:
        for warning in self.dockerfile.warnings:
            self._warn(f"{self.dockerfile.path}:{warning.line}: {warning.message}")
        built = self.make_plan()
        self.proxy_env = built.proxy_env
        unused = [name for name in built.unused_build_args if name != EPOCH_ARG]
        if unused:
            self._warn(f"one or more build args were not consumed: {', '.join(unused)}")
        number = 1
        for stage in built.stages:
            self._numbers[stage.index] = number
            number += 1 + len(stage.steps)
        self.total = number - 1
        for group in built.groups:
            self._run_group([built.stage(index) for index in group])
        return self._commit(built)

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        self.emit(BuildEvent(EventKind.WARNING, text=text))

    def _run_group(self, stages: Sequence[Any]) -> None:
        from isobox.builder.stagerun import StageRunner

        runs = [_Thread(StageRunner(self, stage).run) for stage in stages]
        try:
            self._wait(runs)
        except BaseException:
            self.cancel.set()
            try:
                self.host.cancel()
            finally:
                for run in runs:  # before the build's directory goes: the stages may still write in it
                    run.join()
            raise
        for stage, run in zip(stages, runs, strict=True):
            self.results[stage.index] = run.result

    def _wait(self, runs: list[_Thread]) -> None:
        """Until every stage is done; the first failure, or the cancel event, raises (KeyboardInterrupt too:
        this thread only waits, so Ctrl-C lands here)."""
        while True:
            for run in runs:
                if run.error is not None:
                    raise run.error
            pending = [run for run in runs if run.is_alive()]
            if not pending:
                return
            if self.cancel.is_set():
                raise BuildCancelledError()
            pending[0].join(WAIT_S)

    def _commit(self, built: BuildPlan) -> BuildResult:
        self.check_cancelled()
        final = self.results[built.target]
        final.config.labels(self.options.labels)
        target = built.platform
        document: dict[str, Any] = {
            "created": final.history[-1]["created"] if final.history else self.created(),
            "architecture": target.architecture,
            "os": target.os,
            "config": final.config.config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in final.layers]},
            "history": final.history,
        }
        if target.variant:
            document["variant"] = target.variant
        if final.config.author:
            document["author"] = final.config.author
        image_id = self.host.commit(document, final.layers, self.options.tags)
        self.emit(BuildEvent(EventKind.IMAGE, text=image_id, tags=self.options.tags))
        return BuildResult(image_id, self.options.tags, self.total, self.cached_steps, tuple(self.warnings))


class _Thread(threading.Thread):
    """A stage in a thread of its own, keeping its result or its error for the waiting thread."""

    def __init__(self, target: Any) -> None:
        super().__init__(name="isobox-build-stage", daemon=True)
        self._run = target
        self.result: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self._run()
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc


def _platform(text: str | None) -> Platform:
    host = platforms.host()
    if not text:
        return host
    wanted = platforms.parse(text)
    if not host.matches(wanted):
        raise InvalidArgumentError(f"--platform {text}: isobox builds for this host's platform ({host}) only",
                                   op="build")
    return wanted

