"""The image store and blob store: commit, resolve, tag, remove, gc and discard; crash-safe and resumable blobs."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from isobox.errors import ConflictError, DigestMismatchError, ImageError, ManifestError, NotFoundError
from isobox.images.content import BlobStore, sha256_digest
from isobox.images.store import OCI_CONFIG, OCI_MANIFEST, ImageRecord, ImageStore, chain_ids
from isobox.service.context import Context

# Unpacking sets ownership (layers carry uid 0), so committing images needs root.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers sets file ownership: root only")


def layer(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def manifest_for(store: ImageStore, tars: list[bytes], *, diff_ids: list[str] | None = None,
                 layer_type: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> bytes:
    layers = []
    for tar in tars:
        blob = gzip.compress(tar, mtime=0)
        layers.append({"mediaType": layer_type, "digest": store.blobs.put_bytes(blob), "size": len(blob)})
    config = json.dumps({"os": "linux", "architecture": "amd64", "rootfs": {
        "type": "layers", "diff_ids": diff_ids if diff_ids is not None else [sha256_digest(t) for t in tars]}}).encode()
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": layers,
                       "config": {"mediaType": OCI_CONFIG, "digest": store.blobs.put_bytes(config),
                                  "size": len(config)}}).encode()


def commit(ctx: Context, tars: list[bytes], *names: str) -> ImageRecord:
    return ctx.images.commit(manifest_for(ctx.images, tars), list(names))


BASE = layer({"etc/os-release": b"ID=test\n"})
APP = layer({"app/run": b"#!/bin/sh\n"})


def test_chain_ids_follow_the_image_spec() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert chain_ids([a, b]) == [a, "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()]


@needs_root
def test_commit_resolve_and_share_layers(ctx: Context) -> None:
    base = commit(ctx, [BASE], "example.com/base:1")
    app = commit(ctx, [BASE, APP], "example.com/app:1")
    assert app.layers[0].chain_id == base.layers[0].chain_id, "the base layer is unpacked once, shared"
    assert len(list(ctx.paths.layers.iterdir())) == 2
    assert ctx.images.resolve("example.com/app:1").id == app.id
    assert ctx.images.resolve(app.id).id == app.id
    assert ctx.images.resolve(app.short_id).id == app.id
    with pytest.raises(NotFoundError):  # a digest is found only as a RepoDigest (pulled or pushed by it)
        ctx.images.resolve(f"example.com/app@{app.manifest_digest}")
    assert (Path(ctx.images.layer_dirs(app)[1]) / "app/run").read_bytes() == b"#!/bin/sh\n"
    with pytest.raises(NotFoundError, match="pull it first"):
        ctx.images.resolve("example.com/nothing:1")


@needs_root
def test_tag_and_remove_semantics(ctx: Context) -> None:
    record = commit(ctx, [BASE], "example.com/base:1")
    ctx.images.tag("example.com/base:1", "example.com/other:2")
    assert ctx.images.names(record.id) == ["example.com/base:1", "example.com/other:2"]
    assert ctx.images.remove("example.com/other:2") == ["untagged example.com/other:2"]
    assert ctx.images.blobs.has(record.id), "untagging one of several names keeps the image"
    done = ctx.images.remove("example.com/base:1")
    assert done == ["untagged example.com/base:1", f"deleted {record.id}"]
    assert ctx.images.list() == []
    assert list(ctx.paths.layers.iterdir()) == [] and ctx.images.blobs.all_digests() == []


@needs_root
def test_remove_refuses_an_image_in_use(ctx: Context) -> None:
    record = commit(ctx, [BASE], "example.com/base:1")
    with ctx.db.transaction() as tx:
        tx.execute("INSERT INTO workloads (id, name, kind, status, image_id, record, created_at) "
                   "VALUES ('w1', 'web', 'container', 'running', ?, '{}', 0)", (record.id,))
    with pytest.raises(ConflictError, match="used by workload"):
        ctx.images.remove("example.com/base:1")


def test_invalid_diff_id_is_refused_before_anything_is_stored(ctx: Context) -> None:
    data = manifest_for(ctx.images, [BASE], diff_ids=["sha256:../../../etc"])
    with pytest.raises(ManifestError, match="not a valid digest"):
        ctx.images.commit(data, ["example.com/x:1"])
    assert not ctx.images.blobs.has(sha256_digest(data)), "the manifest is stored only on success"
    assert list(ctx.paths.layers.iterdir()) == []


def test_unknown_layer_type_and_count_mismatch(ctx: Context) -> None:
    with pytest.raises(ManifestError, match="unsupported media type 'application/x-nope'"):
        ctx.images.commit(manifest_for(ctx.images, [BASE], layer_type="application/x-nope"), [])
    with pytest.raises(ManifestError, match="1 layers but 0 diff_ids"):
        ctx.images.commit(manifest_for(ctx.images, [BASE], diff_ids=[]), [])


@needs_root
def test_gc_keeps_referenced_and_discard_only_removes_unreferenced(ctx: Context) -> None:
    record = commit(ctx, [BASE], "example.com/base:1")
    orphan = ctx.images.blobs.put_bytes(b"orphan")
    ctx.images.discard({orphan, record.layers[0].digest}, {record.layers[0].chain_id})
    assert not ctx.images.blobs.has(orphan)
    assert ctx.images.blobs.has(record.layers[0].digest), "discard never removes what an image references"
    assert ctx.images.layer_dir(record.layers[0].chain_id).is_dir()
    other = ctx.images.blobs.put_bytes(b"other")
    assert ctx.images.gc() == (0, 1) and not ctx.images.blobs.has(other)


# ---- blobs -------------------------------------------------------------------------------------


DATA = bytes(range(256)) * 1000
DIGEST = sha256_digest(DATA)


def source(data: bytes, *, honour_range: bool = True, fail_after: int | None = None,
           calls: list[int] | None = None) -> object:
    @contextlib.contextmanager
    def open_stream(offset: int) -> Iterator[tuple[int, Iterable[bytes]]]:
        if calls is not None:
            calls.append(offset)
        start = offset if honour_range else 0

        def chunks() -> Iterator[bytes]:
            for i in range(start, len(data), 10_000):
                if fail_after is not None and i >= fail_after:
                    raise ImageError("connection reset")
                yield data[i : i + 10_000]

        yield start, chunks()

    return open_stream


def test_put_stream_verifies(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    with pytest.raises(DigestMismatchError, match="expected"):
        blobs.put_stream([b"other"], DIGEST)
    with pytest.raises(DigestMismatchError, match="truncated"):
        blobs.put_stream([DATA[:10]], DIGEST, expected_size=len(DATA))
    assert blobs.all_digests() == [] and list((tmp_path / "tmp").iterdir()) == []
    assert blobs.put_stream([DATA], DIGEST, expected_size=len(DATA)) == DIGEST


def test_resumable_keeps_an_interrupted_download_and_continues_it(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    with pytest.raises(ImageError, match="connection reset"):
        blobs.put_resumable(source(DATA, fail_after=100_000), DIGEST, expected_size=len(DATA))  # type: ignore[arg-type]
    assert blobs.partial_path(DIGEST).stat().st_size == 100_000
    calls: list[int] = []
    blobs.put_resumable(source(DATA, calls=calls), DIGEST, expected_size=len(DATA))  # type: ignore[arg-type]
    assert calls == [100_000] and blobs.read(DIGEST) == DATA
    assert not blobs.partial_path(DIGEST).exists()


def test_resumable_restarts_when_the_source_ignores_range(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    blobs.partial_path(DIGEST).parent.mkdir(parents=True)
    blobs.partial_path(DIGEST).write_bytes(DATA[:5000])
    seen: list[int] = []
    blobs.put_resumable(source(DATA, honour_range=False), DIGEST, expected_size=len(DATA),  # type: ignore[arg-type]
                        on_bytes=seen.append)
    assert blobs.read(DIGEST) == DATA and seen[:2] == [5000, -5000]


def test_resumable_bad_content_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    with pytest.raises(DigestMismatchError, match="truncated"):
        blobs.put_resumable(source(DATA[:1000]), DIGEST, expected_size=len(DATA))  # type: ignore[arg-type]
    with pytest.raises(DigestMismatchError, match="has digest"):
        blobs.put_resumable(source(DATA[::-1]), DIGEST, expected_size=len(DATA))  # type: ignore[arg-type]
    with pytest.raises(DigestMismatchError, match="larger than"):
        blobs.put_resumable(source(DATA + b"x"), DIGEST, expected_size=len(DATA))  # type: ignore[arg-type]
    assert list((tmp_path / "tmp").iterdir()) == [] and blobs.all_digests() == []


def test_resumable_concurrent_writers_do_not_interleave(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def one() -> None:
        try:  # separate BlobStore objects, as separate processes would have
            BlobStore(tmp_path / "blobs", tmp_path / "tmp").put_resumable(
                source(DATA), DIGEST, expected_size=len(DATA))  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert BlobStore(tmp_path / "blobs", tmp_path / "tmp").read(DIGEST) == DATA
    assert list((tmp_path / "tmp").iterdir()) == []


def test_gc_removes_the_work_directory_of_a_killed_unpack_but_not_a_live_one(ctx: Context) -> None:
    from isobox.state.locks import locked

    stale = ctx.paths.layers / f".unpack-{'a' * 64}-x1"
    live = ctx.paths.layers / f".unpack-{'b' * 64}-x2"
    for work in (stale, live):
        (work / "diff").mkdir(parents=True)
    with locked(ctx.paths.locks, f"layer-{'b' * 64}"):  # an unpack of that layer is in progress
        assert ctx.images.gc() == (1, 0)
    assert not stale.exists() and live.exists()


# ---- RepoDigests -------------------------------------------------------------------------------


def reworded(manifest: bytes, note: str) -> bytes:
    """The same image (config, layers) under another manifest: another manifest digest."""
    document = json.loads(manifest)
    document["annotations"] = {"note": note}
    return json.dumps(document).encode()


@needs_root
def test_every_manifest_an_image_was_pulled_by_is_kept(ctx: Context) -> None:
    first = manifest_for(ctx.images, [BASE])
    second = reworded(first, "docker")
    one = ctx.images.commit(first, ["example.com/busybox:1"], digests=[("example.com/busybox", sha256_digest(first))])
    two = ctx.images.commit(second, ["example.com/busybox:docker"],
                            digests=[("example.com/busybox", sha256_digest(second))])
    assert one.id == two.id
    assert [str(d) for d in ctx.images.repo_digests(one.id)] == [
        f"example.com/busybox@{sha256_digest(first)}", f"example.com/busybox@{sha256_digest(second)}"]
    for manifest in (first, second):
        assert ctx.images.resolve(f"example.com/busybox@{sha256_digest(manifest)}").id == one.id
    with pytest.raises(NotFoundError):  # the digest under another repository: not this image's RepoDigest
        ctx.images.resolve(f"example.com/other@{sha256_digest(first)}")
    assert ctx.images.gc() == (0, 0), "both manifests stay in the store"
    assert ctx.images.blobs.has(sha256_digest(first)) and ctx.images.blobs.has(sha256_digest(second))
    # rmi of a digest reference drops only that RepoDigest; the last tag takes the image and the rest.
    assert ctx.images.remove(f"example.com/busybox@{sha256_digest(first)}") == [
        f"untagged example.com/busybox@{sha256_digest(first)}"]
    ctx.images.remove("example.com/busybox:1")
    done = ctx.images.remove("example.com/busybox:docker")
    assert done[-1] == f"deleted {one.id}" and f"untagged example.com/busybox@{sha256_digest(second)}" in done
    assert ctx.images.blobs.all_digests() == []


@needs_root
def test_an_index_digest_leads_to_the_image_of_the_platform(ctx: Context) -> None:
    index = "sha256:" + "1" * 64
    amd64 = ctx.images.commit(manifest_for(ctx.images, [BASE]), [], platform="linux/amd64",
                              digests=[("example.com/multi", index)])
    arm64 = ctx.images.commit(manifest_for(ctx.images, [APP]), [], platform="linux/arm64",
                              digests=[("example.com/multi", index)])
    assert ctx.images.resolve(f"example.com/multi@{index}").id == amd64.id  # this host (x86_64)
    assert ctx.images.resolve(f"example.com/multi@{index}", platform="linux/arm64").id == arm64.id
    assert ctx.images.names(amd64.id) == [], "a digest reference is no tag"


@needs_root
def test_a_store_from_before_repo_digests_is_backfilled_once(isobox_root: Path) -> None:
    from isobox.service.context import open_context

    ctx = open_context(isobox_root, require_root=False)
    record = commit(ctx, [BASE], "example.com/old:1")
    with ctx.db.transaction() as tx:  # what an older isobox left: no RepoDigests, digest refs as names
        tx.execute("DROP TABLE image_digests")
        tx.execute("INSERT INTO image_refs (name, image_id) VALUES (?, ?)",
                   (f"example.com/pinned@{record.manifest_digest}", record.id))
    ctx.db.query("PRAGMA user_version = 1")  # the schema before RepoDigests: its migration backfills them
    ctx.close()
    ctx = open_context(isobox_root, require_root=False)
    try:
        assert sorted(str(d) for d in ctx.images.repo_digests(record.id)) == [
            f"example.com/old@{record.manifest_digest}", f"example.com/pinned@{record.manifest_digest}"]
        assert ctx.images.names(record.id) == ["example.com/old:1"]
        assert ctx.images.resolve(f"example.com/pinned@{record.manifest_digest}").id == record.id
    finally:
        ctx.close()
