"""Push an image from the store to a registry (distribution-spec spec.md "Pushing blobs/manifests").

Blobs first (config and layers, in parallel), the manifest last, so a registry never holds a manifest
whose blobs are missing. For each blob: HEAD it (present: skip); else try a cross-repository mount from
another repository of the same registry that the store knows holds it (201: done, no bytes sent); else
upload it, in one PUT or, above ``chunk_bytes``, in PATCH chunks. The manifest is pushed byte for byte,
so its digest (and the image's identity) is the same on both sides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from isobox.errors import ImageError, ImagePullError
from isobox.images import reference
from isobox.images.reference import Reference
from isobox.images.registry import RegistryClient
from isobox.images.store import MAX_MANIFEST_BYTES, ImageRecord, ImageStore, parse_json

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PushedBlob:
    digest: str
    size: int
    how: str  # "exists" | "mounted" | "uploaded"


ProgressFn = Callable[[PushedBlob], None]


def mount_sources(store: ImageStore, target: Reference) -> dict[str, list[str]]:
    """For each blob digest: other repositories of the target's registry that, as far as the store's
    image names tell, hold it (the candidates for a cross-repository mount)."""
    sources: dict[str, list[str]] = {}
    for record, names in store.list():
        repositories = set()
        for name in names:
            ref = reference.parse(name)
            if ref.registry == target.registry and ref.repository != target.repository:
                repositories.add(ref.repository)
        for digest in [record.id] + [layer.digest for layer in record.layers]:
            known = sources.setdefault(digest, [])
            known.extend(sorted(r for r in repositories if r not in known))
    return sources


class Pusher:
    def __init__(self, store: ImageStore, client: RegistryClient, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 progress: ProgressFn | None = None, workers: int = 4) -> None:
        self.store = store
        self.client = client
        self.chunk_bytes = chunk_bytes
        self.progress = progress or (lambda blob: None)
        self.workers = workers

    def push(self, record: ImageRecord, target: Reference) -> str:
        manifest = self.store.blobs.read(record.manifest_digest, max_bytes=MAX_MANIFEST_BYTES)
        document = parse_json(manifest, f"manifest of {record.id}")
        media_type = str(document.get("mediaType") or record.manifest_media_type)
        blobs = [(record.id, self.store.blobs.path(record.id).stat().st_size)]
        blobs += [(layer.digest, layer.size) for layer in record.layers]
        missing = [digest for digest, _ in blobs if not self.store.blobs.has(digest)]
        if missing:
            raise ImageError(f"image {record.short_id} cannot be pushed: blob {missing[0]} is not in the store",
                             op="push", id=record.id)
        sources = mount_sources(self.store, target)
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(blobs))),
                                thread_name_prefix="isobox-push") as pool:
            jobs = [pool.submit(self.push_blob, target, digest, size, sources.get(digest, []))
                    for digest, size in blobs]
            for job in jobs:
                self.progress(job.result())
        ref = target.digest or target.tag or "latest"
        digest = self.client.put_manifest(target.repository, ref, manifest, media_type)
        if digest != record.manifest_digest:
            raise ImagePullError(f"registry stored manifest {digest}, but isobox sent {record.manifest_digest}",
                                 op="push", id=str(target))
        self.store.add_repo_digest(record, target.name, digest)  # as Docker: pushed by digest is a RepoDigest
        return digest

    def push_blob(self, target: Reference, digest: str, size: int, sources: list[str]) -> PushedBlob:
        if self.client.has_blob(target.repository, digest):
            return PushedBlob(digest, size, "exists")
        if sources:
            # One attempt: a registry that cannot mount opens a normal upload session instead, which we use.
            upload = self.client.start_upload(target.repository, mount=digest, source=sources[0])
            if upload is None:
                log.info("mounted %s from %s", digest, sources[0])
                return PushedBlob(digest, size, "mounted")
        else:
            upload = self.client.start_upload(target.repository)
        assert upload is not None
        self.client.upload(target.repository, upload, self.store.blobs.path(digest), digest, size,
                           chunk_bytes=self.chunk_bytes)
        return PushedBlob(digest, size, "uploaded")


def push(store: ImageStore, client: RegistryClient, record: ImageRecord, target: Reference, *,
         chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: ProgressFn | None = None) -> str:
    return Pusher(store, client, chunk_bytes=chunk_bytes, progress=progress).push(record, target)
