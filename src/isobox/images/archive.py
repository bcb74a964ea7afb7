"""Images to and from tar archives: ``docker save``'s format and the OCI image layout (image-spec
image-layout.md), the two formats Docker, Podman and skopeo exchange.

Loading treats the archive as hostile: members are only ever looked up by the names its JSON gives
(nothing is extracted to the filesystem), JSON members are size-bounded, and every blob is verified
against its digest on its way into the store. Layers are then unpacked by the store's safe unpacker.

docker-archive: manifest.json = [{"Config": "<hex>.json", "RepoTags": [...], "Layers": ["<hex>/layer.tar"]}];
layers may be compressed (Docker accepts gzip), which isobox keeps as they are in its store.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import io
import json
import logging
import os
import secrets
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from isobox.errors import (
    DigestMismatchError,
    HostError,
    ImageError,
    ImagePullError,
    InvalidArgumentError,
    ManifestError,
)
from isobox.images import platform as platforms
from isobox.images import reference
from isobox.images.content import CHUNK, split_digest
from isobox.images.manifest import document_type
from isobox.images.store import (
    INDEX_TYPES,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    OCI_CONFIG,
    OCI_MANIFEST,
    ImageRecord,
    ImageStore,
    parse_json,
)
from isobox.state.locks import locked

log = logging.getLogger(__name__)

FORMATS = ("docker", "oci")
_NAME_ANNOTATION = "io.containerd.image.name"
_REF_ANNOTATION = "org.opencontainers.image.ref.name"
_LAYER_TYPES_BY_MAGIC = (
    (b"\x1f\x8b", "application/vnd.oci.image.layer.v1.tar+gzip"),
    (b"\x28\xb5\x2f\xfd", "application/vnd.oci.image.layer.v1.tar+zstd"),
)


# ---- save --------------------------------------------------------------------------------------


SAVE_NOTE_PREFIX = "save-"  # lib/tmp/save-PID-…: names the file a save is writing, for prune


def save(store: ImageStore, names: list[str], output: Path, fmt: str) -> None:
    """Write the named images into one tar at ``output`` (written aside, then renamed into place).

    The file written aside (``.NAME.tmp-PID`` next to ``output``) is locked while it is written and named
    in a note in lib/tmp: a save that was killed leaves it only until the next save to the same place or
    the next prune (`clear_stale_saves`)."""
    if not names:
        raise InvalidArgumentError("save needs at least one image", op="save")
    images = [(store.resolve(name), name) for name in names]
    _clear_siblings(output)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        with _noted(store.paths.tmp, tmp), _locked_file(tmp) as handle:
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
                if fmt == "oci":
                    _save_oci(store, images, tar)
                else:
                    _save_docker(store, images, tar)
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(tmp, output)
    except OSError as exc:
        raise ImageError(f"cannot write {output}: {_why(exc, output)}", op="save", path=str(output)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _why(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ENOSPC:
        from isobox.state.db import mount_point

        return f"the file system at {mount_point(path.parent)} is full"
    return exc.strerror or str(exc)


@contextlib.contextmanager
def _noted(tmp_dir: Path, path: Path) -> Iterator[None]:
    """A note naming ``path``, locked while the caller writes it (see clear_stale_saves)."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    note = tmp_dir / f"{SAVE_NOTE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(note, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, os.fsencode(path))
        yield
    finally:
        note.unlink(missing_ok=True)
        os.close(fd)


def clear_stale_saves(tmp_dir: Path) -> int:
    """Delete the files of saves that were killed (their notes are no longer locked). Returns how many."""
    removed = 0
    for note in sorted(tmp_dir.glob(f"{SAVE_NOTE_PREFIX}*")):
        try:
            fd = os.open(note, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # that save is running
        try:
            written = Path(os.fsdecode(os.read(fd, 65536)))
            if _is_save_tmp(written):  # only ever a file of the name save gives it
                written.unlink(missing_ok=True)
                removed += 1
            note.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed


def _is_save_tmp(path: Path) -> bool:
    head, sep, pid = path.name.rpartition(".tmp-")
    return bool(sep) and head.startswith(".") and pid.isdigit()


@contextlib.contextmanager
def _locked_file(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for writing and locked (flock) while it is written: another save's clean-up leaves it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    with os.fdopen(fd, "wb") as handle:
        yield handle


def _clear_siblings(output: Path) -> None:
    """Files of earlier saves to ``output`` that were killed (no live save holds their lock)."""
    try:
        siblings = sorted(output.parent.glob(f".{glob.escape(output.name)}.tmp-*"))
    except OSError:
        return
    for sibling in siblings:
        if not _is_save_tmp(sibling):
            continue
        try:
            fd = os.open(sibling, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            sibling.unlink(missing_ok=True)
        except BlockingIOError:
            continue  # a save to the same file is running
        finally:
            os.close(fd)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_blob(tar: tarfile.TarFile, store: ImageStore, digest: str, name: str, written: set[str]) -> None:
    if name in written:
        return
    path = store.blobs.path(digest)
    info = tarfile.TarInfo(name)
    info.size, info.mode = path.stat().st_size, 0o644
    with open(path, "rb") as source:
        tar.addfile(info, source)
    written.add(name)


def _blob_name(digest: str) -> str:
    algorithm, hexpart = split_digest(digest)
    return f"blobs/{algorithm}/{hexpart}"


def _save_oci(store: ImageStore, images: list[tuple[ImageRecord, str]], tar: tarfile.TarFile) -> None:
    written: set[str] = set()
    entries = []
    for record, name in images:
        for digest in (record.manifest_digest, record.id, *(layer.digest for layer in record.layers)):
            _add_blob(tar, store, digest, _blob_name(digest), written)
        entry: dict[str, Any] = {"mediaType": record.manifest_media_type, "digest": record.manifest_digest,
                                 "size": store.blobs.path(record.manifest_digest).stat().st_size}
        ref = _as_reference(name)
        if ref is not None:
            entry["annotations"] = {_NAME_ANNOTATION: str(ref), _REF_ANNOTATION: ref.tag or ref.target}
        entries.append(entry)
    _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    _add_bytes(tar, "index.json", json.dumps(index, indent=2).encode())


def _save_docker(store: ImageStore, images: list[tuple[ImageRecord, str]], tar: tarfile.TarFile) -> None:
    written: set[str] = set()
    manifest: dict[str, dict[str, Any]] = {}
    for record, name in images:
        config_name = record.id.split(":", 1)[1] + ".json"
        _add_blob(tar, store, record.id, config_name, written)
        layer_names = []
        for layer in record.layers:
            layer_name = layer.digest.split(":", 1)[1] + "/layer.tar"
            _add_blob(tar, store, layer.digest, layer_name, written)
            layer_names.append(layer_name)
        item = manifest.setdefault(record.id, {"Config": config_name, "RepoTags": [], "Layers": layer_names})
        ref = _as_reference(name)
        if ref is not None and ref.tag and not ref.digest:
            item["RepoTags"].append(ref.familiar())
    _add_bytes(tar, "manifest.json", json.dumps(list(manifest.values()), indent=2).encode())


def _as_reference(name: str) -> reference.Reference | None:
    """A name the user gave, as a reference, unless it was an image id."""
    try:
        ref = reference.parse(name)
    except InvalidArgumentError:
        return None
    hexpart = name.removeprefix("sha256:")
    looks_like_id = len(hexpart) >= 12 and all(c in "0123456789abcdef" for c in hexpart)
    return None if looks_like_id else ref


# ---- load --------------------------------------------------------------------------------------


class _Loader:
    def __init__(self, store: ImageStore, tar: tarfile.TarFile, source: Path, added: set[str]) -> None:
        self.store = store
        self.tar = tar
        self.source = source
        self.added = added  # blobs this load put into the store

    def load(self) -> list[ImageRecord]:
        members = set(self.tar.getnames())
        if "manifest.json" in members:
            return self.load_docker()
        if "index.json" in members and "oci-layout" in members:
            return self.load_oci()
        raise ManifestError(
            f"{self.source} is neither a docker-archive (manifest.json) nor an OCI layout (index.json)", op="load"
        )

    def member(self, name: str, *, max_bytes: int | None = None) -> IO[bytes]:
        try:
            info = self.tar.getmember(name.removeprefix("./"))
        except KeyError as exc:
            raise ManifestError(f"archive {self.source} has no member {name!r}", op="load") from exc
        if max_bytes is not None and info.size > max_bytes:
            raise ManifestError(f"{name!r} in {self.source} is {info.size} bytes, more than {max_bytes}", op="load")
        stream = self.tar.extractfile(info)
        if stream is None:
            raise ManifestError(f"{name!r} in {self.source} is not a file", op="load")
        return stream

    def json(self, name: str, max_bytes: int) -> Any:
        try:
            return json.loads(self.member(name, max_bytes=max_bytes).read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{name!r} in {self.source} is not valid JSON: {exc}", op="load") from exc

    def put(self, name: str, digest: str | None = None, size: int | None = None) -> tuple[str, int]:
        """Store a member as a blob; without a digest (docker-archive layers) hash it in a first pass."""
        if digest is None:
            hasher, size = hashlib.sha256(), 0
            with self.member(name) as stream:
                while chunk := stream.read(CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
            digest = "sha256:" + hasher.hexdigest()
        if not self.store.blobs.has(digest):
            with self.member(name) as stream:
                self.store.blobs.put_stream(iter(lambda: stream.read(CHUNK), b""), digest, expected_size=size,
                                            what=f" ({name} in {self.source})")
            self.added.add(digest)
        return digest, size if size is not None else self.store.blobs.path(digest).stat().st_size

    def load_docker(self) -> list[ImageRecord]:
        entries = self.json("manifest.json", MAX_MANIFEST_BYTES)
        if not isinstance(entries, list):
            raise ManifestError(f"manifest.json in {self.source} is not a list", op="load")
        records = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("Layers"), list):
                raise ManifestError(f"manifest.json in {self.source} has an invalid entry", op="load")
            config_bytes = self.member(str(entry.get("Config")), max_bytes=MAX_CONFIG_BYTES).read()
            config_digest = self.store.blobs.put_bytes(config_bytes)
            self.added.add(config_digest)
            layers = []
            for name in entry["Layers"]:
                digest, size = self.put(str(name))
                with self.member(str(name)) as stream:
                    head = stream.read(4)
                media_type = next((t for magic, t in _LAYER_TYPES_BY_MAGIC if head.startswith(magic)),
                                  "application/vnd.oci.image.layer.v1.tar")
                layers.append({"mediaType": media_type, "digest": digest, "size": size})
            manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": layers,
                        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)}}
            names = [str(t) for t in entry.get("RepoTags") or []]
            records.append(self.commit(json.dumps(manifest).encode(), names, config_bytes))
        return records

    def load_oci(self) -> list[ImageRecord]:
        index = self.json("index.json", MAX_MANIFEST_BYTES)
        records = []
        for entry in (index.get("manifests") if isinstance(index, dict) else None) or []:
            if not isinstance(entry, dict):
                continue
            annotations = entry.get("annotations") or {}
            name = annotations.get(_NAME_ANNOTATION) or annotations.get(_REF_ANNOTATION) or ""
            names = [name] if name and _as_reference(name) is not None and ("/" in name or ":" in name) else []
            manifest = self.blob_json(entry, MAX_MANIFEST_BYTES)
            what = f"manifest {entry.get('digest')} in {self.source}"
            kind = document_type(manifest, what, descriptor_type=str(entry.get("mediaType") or ""), op="load")
            if kind in INDEX_TYPES:
                chosen = platforms.select(manifest, platforms.host(), f"index {entry.get('digest')} in {self.source}")
                manifest_bytes = self.blob_bytes(chosen, MAX_MANIFEST_BYTES)
                manifest = parse_json(manifest_bytes, f"manifest in {self.source}")
                document_type(manifest, f"manifest {chosen.get('digest')} in {self.source}",
                              descriptor_type=str(chosen.get("mediaType") or ""), op="load")
            else:
                manifest_bytes = self.blob_bytes(entry, MAX_MANIFEST_BYTES)
            config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
            config_bytes = self.blob_bytes(config or {}, MAX_CONFIG_BYTES)
            for layer in manifest.get("layers") or []:
                if isinstance(layer, dict):
                    self.put(_blob_name(str(layer.get("digest"))), str(layer.get("digest")), layer.get("size"))
            records.append(self.commit(manifest_bytes, names, config_bytes))
        return records

    def blob_bytes(self, desc: dict[str, Any], max_bytes: int) -> bytes:
        digest = str(desc.get("digest"))
        data = self.member(_blob_name(digest), max_bytes=max_bytes).read()
        algorithm, hexpart = split_digest(digest)
        if hashlib.new(algorithm, data).hexdigest() != hexpart:
            raise DigestMismatchError(f"blob {digest} in {self.source} does not match its digest", op="load")
        if not self.store.blobs.has(digest):
            self.store.blobs.put_bytes(data, digest)
            self.added.add(digest)
        return data

    def blob_json(self, desc: dict[str, Any], max_bytes: int) -> dict[str, Any]:
        return parse_json(self.blob_bytes(desc, max_bytes), f"blob {desc.get('digest')} in {self.source}")

    def commit(self, manifest_bytes: bytes, names: list[str], config_bytes: bytes) -> ImageRecord:
        found = platforms.from_config(parse_json(config_bytes, f"config in {self.source}"))
        return self.store.commit(manifest_bytes, names, platform=str(found))


def load(store: ImageStore, source: Path) -> list[ImageRecord]:
    """Load a docker-archive or OCI-layout tar (gzip/xz/bz2 compressed or not); returns the images.

    Bad content (a digest mismatch, an unsafe layer, a broken tar) and a full store leave nothing of the
    archive behind; a full store is said as such, not blamed on the archive.
    """
    layers_before = _layer_names(store)
    added: set[str] = set()
    try:
        try:
            with tarfile.open(source, "r:*") as tar, locked(store.paths.locks, "gc", shared=True):
                return _Loader(store, tar, source, added).load()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                from isobox.linux.fs import mount_point

                where = mount_point(exc.filename or store.paths.tmp)
                raise HostError(f"the file system at {where} is full: free space there (e.g. `isobox system "
                                "prune`) and load again", op="load", path=where) from exc
            raise ImageError(f"cannot read archive {source}: {exc}", op="load", path=str(source)) from exc
        except (tarfile.TarError, EOFError) as exc:
            raise ImageError(f"cannot read archive {source}: {exc}", op="load", path=str(source)) from exc
    except (ImageError, HostError) as exc:
        if not isinstance(exc, ImagePullError):
            store.discard(added, {"sha256:" + n for n in _layer_names(store) - layers_before})
        raise


def _layer_names(store: ImageStore) -> set[str]:
    return {p.name for p in store.paths.layers.iterdir()} if store.paths.layers.is_dir() else set()
