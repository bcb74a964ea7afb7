"""Pull an image from a registry into the store (distribution-spec spec.md "Pulling manifests/blobs").

1. Resolve the reference to one image manifest: an index or manifest list is narrowed to the wanted
   platform; every manifest is size-bounded, checked against its digest and against the media types
   its registry and its descriptor claim (images/manifest.py).
2. Check every descriptor (media types, digests, sizes) before any layer is downloaded.
3. Under the shared "gc" lock (so `prune` cannot delete what is not committed yet): download the
   config, then the layers in parallel threads; each layer is verified while it streams, kept as a
   partial file if the connection breaks (the next attempt resumes it with Range), and unpacked as soon
   as it is complete, while the other layers still download.
4. `ImageStore.commit` records the image in one transaction, with its tag (a pull by tag) and its
   RepoDigest: ``repository@digest`` of what the reference named (an index's digest for a
   multi-platform image), so ``repo@digest`` is found again without the registry.

A content error (bad digest, unsafe layer, malformed config) removes what this pull added and nobody
references; a network error keeps the completed blobs and partial files, so the next pull continues.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from isobox.errors import DigestMismatchError, ImageError, ImagePullError, ManifestError
from isobox.images import platform as platforms
from isobox.images.manifest import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    SCHEMA1_TYPES,
    descriptor,
    document_type,
    parse_json,
)
from isobox.images.reference import Reference, is_digest
from isobox.images.registry import BlobReadError, Manifest, RegistryClient
from isobox.images.store import ImageRecord, ImageStore, LayerRecord, image_layers
from isobox.state.locks import locked

log = logging.getLogger(__name__)

RETRIES = 3


class Stage(enum.Enum):
    RESOLVED = "resolved"        # the manifest is known: total = number of layers
    DOWNLOADING = "downloading"  # current/total bytes of one blob
    DOWNLOADED = "downloaded"
    UNPACKED = "unpacked"
    DONE = "done"


@dataclass(frozen=True)
class PullEvent:
    stage: Stage
    digest: str = ""
    current: int = 0
    total: int = 0


ProgressFn = Callable[[PullEvent], None]


class _Cancelled(Exception):
    """Another layer failed: stop streaming this one."""


@dataclass
class _Tracker:
    """What this pull added to the store, to remove again if its content turns out bad."""

    blobs: set[str]
    chains: set[str]
    lock: threading.Lock


@dataclass(frozen=True)
class Resolved:
    """What a reference names in the registry: its digest (an index's, for a multi-platform image) and
    the image manifest chosen for the platform."""

    digest: str
    manifest: Manifest


def resolve_manifest(client: RegistryClient, ref: Reference, wanted: platforms.Platform | None) -> Resolved:
    """The image manifest for ``ref`` on ``wanted`` (default: the host), narrowing an index if needed.

    Every document is checked against the media types its registry and its descriptor claim
    (images/manifest.py, CVE-2021-41190) before its fields are used.
    """
    what = f"image {ref}"
    top = client.get_manifest(ref.repository, ref.target)
    document = parse_json(top.data, f"manifest of {what}")
    media_type = document_type(document, f"the manifest of {what}", content_type=top.media_type)
    chosen = top
    if media_type in INDEX_TYPES:
        entry = platforms.select(document, wanted or platforms.host(), what)
        digest, size = entry.get("digest"), entry.get("size", 0)
        if not isinstance(digest, str) or not is_digest(digest):
            raise ManifestError(f"the index of {what} has an invalid digest {digest!r}", op="pull")
        if not isinstance(size, int) or size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"the index of {what} declares a manifest of {size!r} bytes", op="pull")
        entry_type = entry.get("mediaType", "")
        if not isinstance(entry_type, str):
            raise ManifestError(f"the index of {what} has an entry whose mediaType is not a string", op="pull")
        chosen = client.get_manifest(ref.repository, digest)
        document = parse_json(chosen.data, f"manifest {digest} of {what}")
        media_type = document_type(document, f"manifest {digest} of {what}", descriptor_type=entry_type,
                                   content_type=chosen.media_type)
    if media_type in SCHEMA1_TYPES:
        raise ManifestError(f"{what} uses Docker schema 1 manifests, which are deprecated and not supported",
                            op="pull")
    if media_type not in MANIFEST_TYPES:
        raise ManifestError(f"{what} has a manifest of unsupported media type {media_type!r}", op="pull")
    return Resolved(top.digest, chosen)


class Puller:
    def __init__(self, store: ImageStore, client: RegistryClient, ref: Reference, *,
                 progress: ProgressFn | None = None, workers: int = 4) -> None:
        self.store = store
        self.client = client
        self.ref = ref
        self.progress = progress or (lambda event: None)
        self.workers = workers
        self.cancel = threading.Event()
        self.added = _Tracker(set(), set(), threading.Lock())

    def pull(self, wanted: platforms.Platform | None) -> ImageRecord:
        resolved = resolve_manifest(self.client, self.ref, wanted)
        manifest = resolved.manifest
        document = parse_json(manifest.data, f"manifest of image {self.ref}")
        config_digest, config_size = descriptor(document, "config", f"the manifest of image {self.ref}")
        if config_size > MAX_CONFIG_BYTES:
            raise ManifestError(f"the config of image {self.ref} is {config_size} bytes, more than "
                                f"{MAX_CONFIG_BYTES}", op="pull")
        try:
            with locked(self.store.paths.locks, "gc", shared=True):
                self.fetch(config_digest, config_size)
                config = parse_json(self.store.blobs.read(config_digest, max_bytes=MAX_CONFIG_BYTES),
                                    f"config of image {self.ref}")
                found = self.check_platform(config, wanted)
                layers = image_layers(document, config, manifest.digest)
                self.progress(PullEvent(Stage.RESOLVED, manifest.digest, 0, len(layers)))
                self.fetch_layers(layers)
                # As Docker: a tag names the image; a digest reference only adds the RepoDigest every pull adds.
                names = [] if self.ref.digest else [str(self.ref)]
                record = self.store.commit(manifest.data, names, platform=str(found),
                                           digests=[(self.ref.name, resolved.digest)])
        except ImageError as exc:
            if not isinstance(exc, ImagePullError):  # bad content: nothing of it may stay
                self.store.discard(self.added.blobs, self.added.chains)
            raise
        self.progress(PullEvent(Stage.DONE, record.id))
        return record

    def check_platform(self, config: dict[str, Any], wanted: platforms.Platform | None) -> platforms.Platform:
        found = platforms.from_config(config)
        if found.os and found.architecture and not (wanted or platforms.host()).matches(found):
            if wanted is not None:
                raise ManifestError(f"image {self.ref} is for {found}, not the requested {wanted}", op="pull")
            log.warning("image %s is for %s, not this host's %s", self.ref, found, platforms.host())
        return found

    # ---- downloading ---------------------------------------------------------------------------

    def fetch_layers(self, layers: list[LayerRecord]) -> None:
        if not layers:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(layers))),
                                thread_name_prefix="isobox-pull") as pool:
            futures = [pool.submit(self.fetch_layer, layer) for layer in layers]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                self.cancel.set()
                wait(futures)
                raise failed[0].exception()  # type: ignore[misc]

    def fetch_layer(self, layer: LayerRecord) -> None:
        self.fetch(layer.digest, layer.size)
        self.progress(PullEvent(Stage.DOWNLOADED, layer.digest, layer.size, layer.size))
        fresh = not (self.store.layer_dir(layer.chain_id) / "diff").is_dir()
        self.store.ensure_layer(layer)
        if fresh:
            with self.added.lock:
                self.added.chains.add(layer.chain_id)
        self.progress(PullEvent(Stage.UNPACKED, layer.digest, layer.size, layer.size))

    def fetch(self, digest: str, size: int) -> None:
        """Download one blob into the store unless it is there, retrying (and resuming) broken transfers."""
        if self.store.blobs.has(digest):
            return
        for attempt in range(1, RETRIES + 1):
            resumed = self.store.blobs.partial_path(digest).exists()
            try:
                self._fetch_once(digest, size)
                break
            except BlobReadError as exc:
                if attempt == RETRIES or self.cancel.is_set():
                    raise
                log.warning("%s; resuming (attempt %d of %d)", exc, attempt + 1, RETRIES)
                time.sleep(0.2 * attempt)
            except DigestMismatchError:
                if not resumed or attempt == RETRIES:  # a stale partial copy gets one fresh try
                    raise
        with self.added.lock:
            self.added.blobs.add(digest)

    def _fetch_once(self, digest: str, size: int) -> None:
        done = 0

        def on_bytes(n: int) -> None:
            nonlocal done
            done += n
            self.progress(PullEvent(Stage.DOWNLOADING, digest, done, size))

        def open_stream(offset: int) -> AbstractContextManager[tuple[int, Iterable[bytes]]]:
            return self._cancellable(self.client.blob(self.ref.repository, digest, offset))

        try:
            self.store.blobs.put_resumable(open_stream, digest, expected_size=size,
                                           what=f" of image {self.ref}", on_bytes=on_bytes)
        except _Cancelled as exc:
            raise ImagePullError(f"download of blob {digest} cancelled", op="pull") from exc
        except OSError as exc:  # writing the partial file: disk full, read-only store ...
            from isobox.linux.fs import is_full, mount_point

            path = str(self.store.blobs.partial_path(digest))
            why = f"the file system at {mount_point(path)} is full" if is_full(exc) else str(exc)
            raise ImageError(f"cannot store blob {digest} of image {self.ref}: {why}", op="pull", path=path) from exc

    @contextmanager
    def _cancellable(
        self, source: AbstractContextManager[tuple[int, Iterator[bytes]]]
    ) -> Iterator[tuple[int, Iterable[bytes]]]:
        with source as (start, chunks):
            def checked() -> Iterator[bytes]:
                for chunk in chunks:
                    if self.cancel.is_set():
                        raise _Cancelled()
                    yield chunk

            yield start, checked()


def pull(store: ImageStore, client: RegistryClient, ref: Reference, *, wanted: platforms.Platform | None = None,
         progress: ProgressFn | None = None, workers: int = 4) -> ImageRecord:
    return Puller(store, client, ref, progress=progress, workers=workers).pull(wanted)
