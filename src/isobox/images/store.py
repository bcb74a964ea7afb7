"""The image store: image records in SQLite, blobs by digest, each layer unpacked once by chain ID.

Layer directories are shared read-only by every image and workload that uses them (overlayfs lower
dirs for containers, the source of the ext4 root disk for VMs). An image becomes visible only after
all its blobs are verified and all its layers unpacked, in one database transaction: a crash at any
point leaves at most unreferenced blobs or layers, which the next pull reuses and `prune` removes.
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isobox.config import Paths
from isobox.errors import ConflictError, DigestMismatchError, ManifestError, NotFoundError
from isobox.images import reference
from isobox.images.content import BlobStore, sha256_digest
from isobox.images.manifest import DOCKER_CONFIG as DOCKER_CONFIG
from isobox.images.manifest import DOCKER_LIST as DOCKER_LIST
from isobox.images.manifest import DOCKER_MANIFEST as DOCKER_MANIFEST
from isobox.images.manifest import INDEX_TYPES as INDEX_TYPES
from isobox.images.manifest import LAYER_TYPES as LAYER_TYPES
from isobox.images.manifest import MANIFEST_TYPES as MANIFEST_TYPES
from isobox.images.manifest import MAX_CONFIG_BYTES as MAX_CONFIG_BYTES
from isobox.images.manifest import MAX_MANIFEST_BYTES as MAX_MANIFEST_BYTES
from isobox.images.manifest import OCI_CONFIG as OCI_CONFIG
from isobox.images.manifest import OCI_INDEX as OCI_INDEX
from isobox.images.manifest import OCI_MANIFEST as OCI_MANIFEST
from isobox.images.manifest import checked_digest, document_type
from isobox.images.manifest import parse_json as parse_json
from isobox.linux.tree import discard_tree
from isobox.model.image_config import ImageConfig
from isobox.state import codec
from isobox.state.build_cache import BuildCacheRepository
from isobox.state.db import Database
from isobox.state.images import ImageRepository, RepoDigest
from isobox.state.locks import locked

if TYPE_CHECKING:
    from isobox.images.unpack import UnpackPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerRecord:
    digest: str       # of the blob as stored (compressed)
    diff_id: str      # of the uncompressed tar
    chain_id: str
    size: int
    media_type: str


@dataclass(frozen=True)
class ImageRecord:
    id: str                 # config digest
    manifest_digest: str
    manifest_media_type: str
    layers: tuple[LayerRecord, ...]
    platform: str
    size: int
    created: str = ""

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[-1][:12]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI image-spec config.md: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append(sha256_digest(f"{chains[-1]} {diff_id}".encode()))
    return chains


class ImageStore:
    def __init__(self, paths: Paths, db: Database, policy: UnpackPolicy | None = None) -> None:
        self.paths = paths
        self.db = db
        self.records = ImageRepository(db)
        self.blobs = BlobStore(paths.blobs, paths.tmp)
        self._policy = policy

    @property
    def policy(self) -> UnpackPolicy:
        """The limits layers are unpacked with (built on first use: unpack is not on `run`'s path)."""
        if self._policy is None:
            from isobox.images.unpack import UnpackPolicy

            self._policy = UnpackPolicy.from_env()
        return self._policy

    @policy.setter
    def policy(self, value: UnpackPolicy) -> None:
        self._policy = value

    # ---- reading -------------------------------------------------------------------------------

    def resolve(self, text: str, *, platform: str = "") -> ImageRecord:
        """An image by reference (busybox, host/repo:tag, repo@digest), by id, or by unique id prefix.

        ``repo@digest`` is found only through the image's RepoDigests: the repository and the digest
        must both be what the image was pulled or pushed by (an image stored under that digest by a
        pull from elsewhere does not count). Where one index digest led to several images (one per
        platform), the one for ``platform`` (default: this host's) is chosen.
        """
        image_id = self.records.by_name(text)
        if image_id is None:
            try:
                ref = reference.parse(text)
            except Exception:  # not a reference: may still be an id
                ref = None
            if ref is not None and ref.digest:
                found = self.by_repo_digest(ref.name, ref.digest, platform)
                image_id = found.image_id if found else None
            elif ref is not None:
                image_id = self.records.by_name(str(ref))
        if image_id is None:
            prefix = text if text.startswith("sha256:") else f"sha256:{text}"
            if len(prefix) >= len("sha256:") + 4 and all(c in "0123456789abcdef" for c in prefix[7:]):
                ids = self.records.by_id_prefix(prefix)
                if len(ids) > 1:
                    raise ConflictError(f"image id prefix {text!r} is ambiguous", op="resolve image")
                image_id = ids[0] if ids else None
        if image_id is None:
            raise NotFoundError(f"image {text!r} is not in the store (pull it first)", op="resolve image")
        return self.get(image_id)

    def by_repo_digest(self, repository: str, digest: str, platform: str = "") -> RepoDigest | None:
        rows = self.records.by_repo_digest(repository, digest)
        if len(rows) > 1:
            from isobox.images import platform as platforms

            wanted = platforms.parse(platform) if platform else platforms.host()
            matching = [r for r in rows if r.platform and wanted.matches(platforms.parse(r.platform))]
            rows = matching or rows
        return rows[0] if rows else None

    def get(self, image_id: str) -> ImageRecord:
        text = self.records.record(image_id)
        if text is None:
            raise NotFoundError(f"image {image_id} is not in the store", op="get image")
        return codec.loads(ImageRecord, text)

    def names(self, image_id: str) -> list[str]:
        return self.records.names(image_id)

    def repo_digests(self, image_id: str) -> list[RepoDigest]:
        return self.records.repo_digests(image_id)

    def list(self) -> list[tuple[ImageRecord, list[str]]]:
        names = self.records.all_names()
        return [(codec.loads(ImageRecord, stored.record), names.get(stored.id, []))
                for stored in self.records.records()]

    def config_document(self, record: ImageRecord) -> dict[str, Any]:
        return parse_json(self.blobs.read(record.id, max_bytes=MAX_CONFIG_BYTES), f"config of image {record.id}")

    def config(self, record: ImageRecord) -> ImageConfig:
        return ImageConfig.from_oci(self.config_document(record))

    def layer_dir(self, chain_id: str) -> Path:
        return self.paths.layers / chain_id.split(":", 1)[1]

    def layer_dirs(self, record: ImageRecord) -> tuple[str, ...]:
        return tuple(str(self.layer_dir(layer.chain_id) / "diff") for layer in record.layers)

    # ---- writing -------------------------------------------------------------------------------

    def commit(self, manifest_bytes: bytes, names: builtins.list[str], *, platform: str = "linux/amd64",
               digests: Iterable[tuple[str, str]] = ()) -> ImageRecord:
        """Record an image whose manifest, config and layer blobs are all in the blob store.

        Verifies the config against the manifest and each layer's diff_id, unpacks missing layers, then
        writes the record, its names (tags) and its RepoDigests — (repository, digest) pairs, the digest
        being the manifest's own or the index's that led to it — in one transaction.
        """
        manifest_digest = sha256_digest(manifest_bytes)
        manifest = parse_json(manifest_bytes, f"manifest {manifest_digest}")
        media_type = document_type(manifest, f"manifest {manifest_digest}", op="commit image")
        if media_type not in MANIFEST_TYPES:
            raise ManifestError(
                f"manifest {manifest_digest} has unsupported media type {media_type!r}", op="commit image"
            )
        config_desc = manifest.get("config") or {}
        config_digest = checked_digest(config_desc.get("digest") if isinstance(config_desc, dict) else None,
                                       f"config of manifest {manifest_digest}")
        config_bytes = self.blobs.read(config_digest, max_bytes=MAX_CONFIG_BYTES)
        config = parse_json(config_bytes, f"config {config_digest}")
        layers = image_layers(manifest, config, manifest_digest)
        for layer in layers:
            self.ensure_layer(layer)
        record = ImageRecord(
            id=config_digest,
            manifest_digest=manifest_digest,
            manifest_media_type=media_type,
            layers=tuple(layers),
            platform=platform,
            size=sum(layer.size for layer in layers) + len(config_bytes),
            created=str(config.get("created", "")),
        )
        normalized = [str(reference.parse(n)) for n in names]
        repo_digests = [RepoDigest(repository, digest, record.id, manifest_digest, platform)
                        for repository, digest in digests]
        self.blobs.put_bytes(manifest_bytes, manifest_digest)
        self.records.save(record.id, manifest_digest, codec.dumps(record), normalized, repo_digests)
        return record

    def add_repo_digest(self, record: ImageRecord, repository: str, digest: str) -> None:
        """Record that ``record`` is ``repository@digest`` (after a push: the manifest is the record's)."""
        self.records.add_repo_digest(RepoDigest(repository, digest, record.id, record.manifest_digest,
                                                record.platform))

    def ensure_layer(self, layer: LayerRecord) -> Path:
        """Unpack a layer blob under its chain ID unless it already is; safe against concurrent callers."""
        final = self.layer_dir(layer.chain_id)
        if (final / "diff").is_dir():
            return final
        with locked(self.paths.locks, "layer-" + layer.chain_id.split(":", 1)[1]):
            if (final / "diff").is_dir():
                return final
            self.paths.tmp.mkdir(parents=True, exist_ok=True)
            # The chain id in the name lets gc tell a crashed unpack (its layer lock is free) from a live one.
            prefix = f".unpack-{layer.chain_id.split(':', 1)[1]}-"
            import tempfile

            from isobox.images.unpack import unpack_layer  # pulls in tarfile and the codecs: not on `run`'s path

            work = Path(tempfile.mkdtemp(dir=self.paths.layers, prefix=prefix))
            try:
                (work / "diff").mkdir()
                blob = self.blobs.path(layer.digest)
                result = unpack_layer(blob, work / "diff", policy=self.policy, what=layer.digest)
                if result.diff_id != layer.diff_id:
                    raise DigestMismatchError(
                        f"layer {layer.digest} unpacks to {result.diff_id}, but the image config says {layer.diff_id}",
                        op="unpack layer",
                    )
                work.rename(final)
            except BaseException:
                discard_tree(work)
                raise
        return final

    def tag(self, source: str, target: str) -> None:
        record = self.resolve(source)
        self.records.tag(record.id, str(reference.parse(target)))

    def remove(self, text: str, *, force: bool = False) -> builtins.list[str]:
        """Untag a name (or drop a RepoDigest), or delete an image by id. Returns what was untagged/deleted.

        As Docker: a tag of an image with other tags, or a digest reference of an image with other
        references, is only removed; the last tag takes the image and its RepoDigests with it.
        """
        record = self.resolve(text)
        names = self.names(record.id)
        digests = self.repo_digests(record.id)
        normal = self._normal(text)
        by_name = [n for n in names if n in (text, normal)]
        by_digest = [d for d in digests if str(d) == normal]
        if not force:
            if by_name and len(names) > 1:
                self.records.untag(by_name[0])
                return [f"untagged {by_name[0]}"]
            if by_digest and len(names) + len(digests) > 1:
                self.records.remove_repo_digest(by_digest[0])
                return [f"untagged {by_digest[0]}"]
        deleted = self.records.delete(record.id, force=force, what=text)
        done = [f"untagged {n}" for n in [*names, *(str(d) for d in digests)]]
        if deleted:
            done.append(f"deleted {record.id}")
        self.gc()
        return done

    @staticmethod
    def _normal(text: str) -> str:
        try:
            ref = reference.parse(text)
        except Exception:
            return text
        return f"{ref.name}@{ref.digest}" if ref.digest else str(ref)

    def gc(self) -> tuple[int, int]:
        """Delete layers and blobs no image references. Returns (layers, blobs) removed.

        Pulls and imports hold the "gc" lock shared while their blobs are not yet committed, so gc
        (exclusive) never deletes a blob that an image is about to reference.
        """
        with locked(self.paths.locks, "gc"):
            return self._collect(None, None)

    def discard(self, blobs: set[str], chain_ids: set[str]) -> None:
        """Best-effort removal of what a failed pull or load left behind, if no image references it.

        Only when the gc lock is free right now (no other pull or load in flight may still need them);
        otherwise they stay for `prune`.
        """
        self.paths.locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.locks / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise
                log.info("another pull is in flight: leaving unreferenced blobs for prune")
                return
            self._collect(blobs, {c.split(":", 1)[-1] for c in chain_ids})
        finally:
            os.close(fd)

    def _remove_stale_unpack(self, work: Path) -> int:
        """Remove the work directory of an unpack that was killed (nobody holds its layer lock)."""
        chain_hex = work.name.removeprefix(".unpack-").split("-", 1)[0]
        self.paths.locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.locks / f"layer-{chain_hex}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0  # that unpack is running right now
            return 1 if discard_tree(work) else 0
        finally:
            os.close(fd)

    def _collect(self, only_blobs: set[str] | None, only_chains: set[str] | None) -> tuple[int, int]:
        """Delete unreferenced layers and blobs (all, or only among the given ones); caller holds gc."""
        keep_chains: set[str] = set()
        keep_blobs: set[str] = self.records.manifests()
        cached_blobs, cached_chains = BuildCacheRepository(self.db).kept_layers()  # `isobox build`'s cache
        keep_blobs |= cached_blobs
        keep_chains |= {chain.split(":", 1)[-1] for chain in cached_chains}
        for record, _ in self.list():
            keep_blobs.add(record.id)
            for layer in record.layers:
                keep_chains.add(layer.chain_id.split(":", 1)[1])
                keep_blobs.add(layer.digest)
        layers_removed = blobs_removed = 0
        if self.paths.layers.is_dir():
            for entry in self.paths.layers.iterdir():
                if entry.name.startswith(".unpack-") and only_chains is None:
                    layers_removed += self._remove_stale_unpack(entry)
                    continue
                if entry.name.startswith(".") or entry.name in keep_chains:
                    continue
                if (only_chains is None or entry.name in only_chains) and discard_tree(entry):
                    layers_removed += 1
        for digest in self.blobs.all_digests():
            if digest not in keep_blobs and (only_blobs is None or digest in only_blobs):
                self.blobs.delete(digest)
                blobs_removed += 1
        return layers_removed, blobs_removed


def image_layers(manifest: dict[str, Any], config: dict[str, Any], manifest_digest: str) -> list[LayerRecord]:
    """The layers of an image: the manifest's descriptors paired with the config's diff_ids, all checked."""
    descriptors = manifest.get("layers")
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(descriptors, list) or not isinstance(diff_ids, list) or len(diff_ids) != len(descriptors):
        count = len(descriptors) if isinstance(descriptors, list) else "no"
        listed = len(diff_ids) if isinstance(diff_ids, list) else "no"
        raise ManifestError(f"image {manifest_digest}: {count} layers but {listed} diff_ids in its config",
                            op="commit image")
    # diff_ids name the layer directories (via chain IDs): a crafted "sha256:../x" must never get that far.
    checked = [checked_digest(d, f"diff_id of image {manifest_digest}") for d in diff_ids]
    return [layer_record(desc, diff_id, chain_id, manifest_digest)
            for desc, diff_id, chain_id in zip(descriptors, checked, chain_ids(checked), strict=True)]


def layer_record(desc: object, diff_id: str, chain_id: str, manifest_digest: str) -> LayerRecord:
    """A manifest's layer descriptor (image-spec descriptor.md), checked before anything is unpacked."""
    if not isinstance(desc, dict):
        raise ManifestError(f"manifest {manifest_digest} has a layer that is not a descriptor", op="commit image")
    digest = checked_digest(desc.get("digest"), f"layer of manifest {manifest_digest}")
    layer_type = str(desc.get("mediaType", ""))
    if layer_type not in LAYER_TYPES:
        raise ManifestError(f"layer {digest} has unsupported media type {layer_type!r}", op="commit image")
    size = desc.get("size", 0)
    if not isinstance(size, int) or size < 0:
        raise ManifestError(f"layer {digest} has an invalid size {size!r}", op="commit image")
    return LayerRecord(digest, diff_id, chain_id, size, layer_type)
