"""`isobox build`: a Dockerfile built into an image of the store, with the build cache (state/build_cache.py).

    result = build(ctx, BuildOptions(context_dir=Path("."), tags=("app:1",)), progress=show)

The Dockerfile is parsed and planned by builder/ and run by its executor; this module is the executor's
host (``ServiceHost``): base images through service/images.py (pulled when missing, or with ``--pull``),
layers into the image store, cache records, RUN steps as workloads (service/build_run.py), and the
final commit with its tags, in one transaction at the very end: a failed or interrupted build tags
nothing.

What a build leaves while it runs: a private directory LIB/tmp/build-ID (the context of an archive,
materialized bind mounts, secrets, layer tars) and its step workloads, all removed when it ends. A
build holds the lock ``build-ID`` while it runs (and ``builder`` shared, which `builder prune` takes
exclusively), so ``sweep`` tells a killed build's leftovers from a running build's and removes them;
every build and `system prune` call it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isobox.builder.context import open_context
from isobox.builder.events import ProgressFn
from isobox.builder.options import BuildOptions
from isobox.builder.outcome import BuildResult
from isobox.errors import IsoboxError, NotFoundError
from isobox.images import reference
from isobox.images.platform import Platform
from isobox.images.store import OCI_CONFIG, OCI_MANIFEST, LayerRecord, chain_ids
from isobox.linux.tree import discard_tree
from isobox.model import ids
from isobox.model.pull import PullPolicy
from isobox.service import build_memo
from isobox.service.context import Context
from isobox.state.build_cache import BuildCacheRepository, CacheEntry
from isobox.state.locks import locked

if TYPE_CHECKING:
    from isobox.builder.copy import Download
    from isobox.builder.executor import BaseState, RunEvents
    from isobox.builder.runstep import RunOutcome, RunRequest
    from isobox.service.build_run import StepRunner

log = logging.getLogger(__name__)

BUILD_LABEL = "isobox.build"  # on a step's workload: the id of the build it belongs to
STEP_LABEL = "isobox.build.step"  # and which step it is
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
_OCI_LAYER_TYPES = {  # the image is OCI: name Docker-typed base layers by their OCI equivalents
    "application/vnd.docker.image.rootfs.diff.tar.gzip": LAYER_TYPE,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
}
GZIP_LEVEL = 1  # build layers are written often and pushed rarely: fast compression (the diff_id is the same)
ROOTDISKS_FILE = "vm-rootdisks"  # in a build's directory: the VM root disks of its steps, for sweep


def cache(ctx: Context) -> BuildCacheRepository:
    return BuildCacheRepository(ctx.db)


def cache_mounts_dir(ctx: Context) -> Path:
    """Where RUN --mount=type=cache directories live, one per id, across builds."""
    return ctx.paths.lib / "build-cache" / "mounts"


@dataclass
class ServiceHost:
    """The executor's host (builder/executor.py ``BuildHost``) over one Context."""

    ctx: Context
    build_id: str
    options: BuildOptions
    scratch: Path
    _steps: StepRunner | None = None
    _pulled: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def steps(self) -> StepRunner:
        """What runs RUN steps (made on first use: a build from the cache runs none)."""
        with self._lock:
            if self._steps is None:
                from isobox.model.spec import Kind
                from isobox.service.build_run import StepRunner

                secrets = {secret.id: secret.source for secret in self.options.secrets}
                kind = Kind.VM if self.options.vm else Kind.CONTAINER
                self._steps = StepRunner(self.ctx, self.build_id, kind, self.scratch, secrets)
            return self._steps

    def base_image(self, reference_text: str, platform: Platform) -> BaseState:
        with self._lock:
            again = self.options.pull and reference_text not in self._pulled
            self._pulled.add(reference_text)
        try:
            if again:
                raise NotFoundError(f"{reference_text}: pulled again (--pull)", op="build")
            record = self.ctx.images.resolve(reference_text, platform=str(platform))
        except NotFoundError:
            # Imported here: the registry client (httpx) is only paid for when an image must be fetched.
            from isobox.service import images as image_service

            policy = PullPolicy.ALWAYS if again else PullPolicy.MISSING
            record = image_service.ensure(self.ctx, reference_text, policy=policy, platform=str(platform))
        from isobox.builder.executor import BaseState

        return BaseState(record.id, record.layers, self.ctx.images.config_document(record))

    def layer_dirs(self, layers: Sequence[LayerRecord]) -> list[Path]:
        return [self.ctx.images.ensure_layer(layer) / "diff" for layer in layers]

    def cached(self, key: str) -> CacheEntry | None:
        entry = cache(self.ctx).get(key)
        if entry is not None and entry.has_layer and not self.ctx.images.blobs.has(entry.digest):
            cache(self.ctx).delete(key)  # its layer was removed from the store: build the step again
            return None
        return entry

    def remember(self, entry: CacheEntry) -> None:
        if not entry.has_layer:  # a layer's entry is written with its layer, under the gc lock
            cache(self.ctx).put(entry)

    def store_layer(self, tar: Path, diff_id: str, parents: Sequence[LayerRecord], key: str,
                    created: str) -> CacheEntry:
        """The layer tar as a blob, unpacked, and its cache entry, all while gc is held off (the entry is
        what keeps the layer once the lock is released)."""
        compressed = tar.with_suffix(".gz")
        try:
            digest = _compress(tar, compressed)
            size = compressed.stat().st_size
            chain = chain_ids([layer.diff_id for layer in parents] + [diff_id])[-1]
            layer = LayerRecord(digest, diff_id, chain, size, LAYER_TYPE)
            with locked(self.ctx.paths.locks, "gc", shared=True):
                with open(compressed, "rb") as data:
                    self.ctx.images.blobs.put_stream(iter(lambda: data.read(1024 * 1024), b""), digest,
                                                     expected_size=size)
                self.ctx.images.ensure_layer(layer)
                entry = CacheEntry(key, diff_id, digest, chain, size, LAYER_TYPE, created)
                cache(self.ctx).put(entry)
            return entry
        finally:
            compressed.unlink(missing_ok=True)

    def run(self, request: RunRequest, events: RunEvents) -> RunOutcome:
        layers = tuple(str(path) for path in self.layer_dirs(request.layers))
        transient = self.options.vm and request.layers and request.image_id == request.layers[-1].chain_id
        if transient:
            with open(self.scratch / ROOTDISKS_FILE, "a") as listed:
                listed.write(request.image_id + "\n")
        try:
            return self.steps.run(request, layers, events)
        finally:
            if transient:
                _discard_rootdisk(self.ctx, request.image_id)

    def fetch(self, url: str, checksum: str) -> Download:
        from isobox.builder.fetch import fetch

        return fetch(url, checksum=checksum, scratch=self.scratch)

    def commit(self, document: dict[str, Any], layers: Sequence[LayerRecord], tags: Sequence[str]) -> str:
        config = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        image_id = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": image_id, "size": len(config)},
            "layers": [{"mediaType": _OCI_LAYER_TYPES.get(layer.media_type, layer.media_type),
                        "digest": layer.digest, "size": layer.size} for layer in layers],
        }
        platform = f"{document['os']}/{document['architecture']}" + (
            f"/{document['variant']}" if document.get("variant") else "")
        records = self.ctx.images.records
        if records.record(image_id) is not None and all(records.by_name(tag) == image_id for tag in tags):
            return image_id  # a rebuild from the cache: the image and its tags are there already
        with locked(self.ctx.paths.locks, "gc", shared=True):
            self.ctx.images.blobs.put_bytes(config)
            record = self.ctx.images.commit(json.dumps(manifest, sort_keys=True).encode(), list(tags),
                                            platform=platform)
        return record.id

    def cancel(self) -> None:
        if self._steps is not None:
            self._steps.cancel()


def _compress(tar: Path, compressed: Path) -> str:
    """gzip ``tar`` into ``compressed`` (reproducibly: no name, no time); the digest of the result."""
    import gzip

    hasher = hashlib.sha256()
    with (open(tar, "rb") as source, open(compressed, "wb") as raw,
          gzip.GzipFile(filename="", fileobj=_Hashed(raw, hasher), mode="wb", compresslevel=GZIP_LEVEL,
                        mtime=0) as out):
        shutil.copyfileobj(source, out, 1024 * 1024)
    return "sha256:" + hasher.hexdigest()


class _Hashed:
    def __init__(self, out: Any, hasher: Any) -> None:
        self.out, self.hasher = out, hasher

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        return int(self.out.write(data))

    def flush(self) -> None:
        self.out.flush()


def _discard_rootdisk(ctx: Context, image_id: str) -> None:
    from isobox.drivers.vm import rootdisk

    try:
        rootdisk.discard_base(ctx.paths.cache, ctx.paths.locks, image_id)
    except OSError as exc:
        log.warning("cannot remove the root disk of build step %s: %s", image_id, exc)


# ---- the build ----------------------------------------------------------------------------------


def normalized_tags(tags: Sequence[str]) -> tuple[str, ...]:
    """-t values as the store names them (docker.io/library/app:latest); a bad one fails before anything."""
    return tuple(dict.fromkeys(str(reference.parse(tag)) for tag in tags))


def build(ctx: Context, options: BuildOptions, *, progress: ProgressFn | None = None,
          cancel: threading.Event | None = None) -> BuildResult:
    """Build the image ``options`` describe; raises DockerfileError (file and line), BuildStepError (a
    RUN that failed) or BuildCancelledError (interrupted), leaving no tag and no workload behind."""
    from dataclasses import replace

    options = replace(options, tags=normalized_tags(options.tags))
    sweep(ctx)
    build_id = ids.new_id()
    with locked(ctx.paths.locks, "builder", shared=True), locked(ctx.paths.locks, f"build-{build_id}"):
        scratch = ctx.paths.tmp / f"build-{build_id}"
        scratch.mkdir(mode=0o700, parents=True)
        try:
            context = open_context(options, scratch)
            memo_key = build_memo.key(options, context)
            fresh = options.no_cache or options.pull
            answered = build_memo.answer(ctx, memo_key, options, progress) if memo_key and not fresh else None
            if answered is not None:
                return answered
            # The parser and the executor: only for builds not remembered whole.
            from isobox.builder.dockerfile import parse
            from isobox.builder.executor import Executor

            dockerfile = parse(context.dockerfile_text, path=context.dockerfile_name)
            host = ServiceHost(ctx, build_id, options, scratch)
            steps = build_memo.Steps()
            executor = Executor(dockerfile, context, options, host, steps.tee(progress), cancel or threading.Event())
            result = executor.run()
            if memo_key:
                bases = [(reference, str(platform), state.id) for (reference, platform), state in executor.bases()]
                build_memo.remember(ctx, memo_key, result, bases, steps)
            return result
        finally:
            _remove_build_dir(ctx, scratch)


def _remove_build_dir(ctx: Context, scratch: Path) -> None:
    listed = scratch / ROOTDISKS_FILE
    if listed.is_file():
        for image_id in listed.read_text().split():
            _discard_rootdisk(ctx, image_id)
    discard_tree(scratch)


def _dead(ctx: Context, build_id: str) -> bool:
    """Whether the build ``build_id`` is over (nobody holds its lock); its lock file goes then."""
    try:
        with locked(ctx.paths.locks, f"build-{build_id}", wait=False):
            (ctx.paths.locks / f"build-{build_id}.lock").unlink(missing_ok=True)
            return True
    except BlockingIOError:
        return False


def sweep(ctx: Context, *, everything: bool = False) -> list[str]:
    """Remove what killed builds left: their step workloads (running or not) and private directories.
    Returns the names of the workloads removed.

    A build makes its directory before its first workload and removes it after its last, so a killed
    build's workloads are looked for only when a dead build's directory is found (``everything``: always,
    for `system prune`)."""
    dead = [directory for directory in (ctx.paths.tmp.glob("build-*") if ctx.paths.tmp.is_dir() else ())
            if directory.is_dir() and _dead(ctx, directory.name.removeprefix("build-"))]
    removed = []
    if dead or everything:
        for record in ctx.records.workloads.all():
            build_id = dict(record.plan.labels).get(BUILD_LABEL)
            if build_id and (ctx.paths.tmp / f"build-{build_id}" in dead or _dead(ctx, build_id)):
                removed += _remove_step(ctx, record.id, record.name)
    for directory in dead:
        _remove_build_dir(ctx, directory)
    return removed


def _remove_step(ctx: Context, workload_id: str, name: str) -> list[str]:
    from isobox.service import workloads

    try:
        workloads.remove(ctx, workload_id, force=True)
    except NotFoundError:
        return []
    except IsoboxError as exc:
        log.warning("cannot remove %s, a step of a build that was killed: %s", name, exc)
        return []
    return [name]


# ---- the cache ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheReport:
    entries: int
    layers: int
    size_bytes: int  # layers only the cache keeps, and the cache mounts


def _cache_only_bytes(ctx: Context, entries: Sequence[CacheEntry]) -> int:
    from isobox.service.system import du

    used = {layer.chain_id for record, _names in ctx.images.list() for layer in record.layers}
    layers = {entry.chain_id: entry.size for entry in entries if entry.has_layer and entry.chain_id not in used}
    mounts = cache_mounts_dir(ctx)
    return sum(layers.values()) + (du(mounts) if mounts.is_dir() else 0)


def usage(ctx: Context) -> CacheReport:
    entries = cache(ctx).all()
    return CacheReport(len(entries), len({e.chain_id for e in entries if e.has_layer}), _cache_only_bytes(ctx, entries))


def prune(ctx: Context, *, wait: bool = True) -> CacheReport | None:
    """Remove the whole build cache (its records, the layers only it kept, the cache mounts); what it
    held. Waits for running builds to end (``wait=False``: returns None at once if one runs)."""
    try:
        with locked(ctx.paths.locks, "builder", wait=wait):
            entries = cache(ctx).all()
            report = CacheReport(len(entries), len({e.chain_id for e in entries if e.has_layer}),
                                 _cache_only_bytes(ctx, entries))
            cache(ctx).clear()
            mounts = cache_mounts_dir(ctx)
            if mounts.exists():
                discard_tree(mounts)
    except BlockingIOError:
        return None
    ctx.images.gc()
    return report

