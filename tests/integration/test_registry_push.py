"""Push from the store to a real docker-registry and pull back; save/load round trips with skopeo."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures import registry as registries
from fixtures.registry import run
from fixtures.registry_images import seed
from isobox.errors import ImagePullError, InvalidArgumentError
from isobox.images.push import PushedBlob
from isobox.service import images as service
from isobox.service.context import Context, open_context

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("registry"))
    try:
        seed(server, "multi", "src/multi:1")
        yield server
    finally:
        server.stop()


def remote_manifest(registry: registries.Registry, repository: str, tag: str) -> httpx.Response:
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    return httpx.get(f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": accept})


def test_push_builtin_image_then_pull_it_into_a_fresh_store(
    ctx: Context, registry: registries.Registry, tmp_path: Path
) -> None:
    record = service.install_builtin(ctx)
    pushed: list[PushedBlob] = []
    target = f"{registry.host}/mine/busybox:v1"
    digest = service.push(ctx, "busybox", target, insecure=True, progress=pushed.append)
    assert digest == record.manifest_digest
    assert {b.how for b in pushed} == {"uploaded"} and len(pushed) == 2  # config + one layer
    response = remote_manifest(registry, "mine/busybox", "v1")
    assert response.headers["Docker-Content-Digest"] == record.manifest_digest
    again: list[PushedBlob] = []
    service.push(ctx, "busybox", target, insecure=True, progress=again.append)
    assert {b.how for b in again} == {"exists"}
    fresh = open_context(tmp_path / "fresh", require_root=False)
    try:
        pulled = service.pull(fresh, target, insecure=True)
        assert pulled.id == record.id and pulled.manifest_digest == record.manifest_digest
    finally:
        fresh.close()


def test_push_mounts_blobs_from_another_repository(ctx: Context, registry: registries.Registry) -> None:
    record = service.pull(ctx, f"{registry.host}/src/multi:1", insecure=True)
    pushed: list[PushedBlob] = []
    service.push(ctx, f"{registry.host}/src/multi:1", f"{registry.host}/dst/multi:1", insecure=True,
                 progress=pushed.append)
    assert {b.how for b in pushed} == {"mounted"}, pushed
    assert len(pushed) == 1 + len(record.layers)
    assert remote_manifest(registry, "dst/multi", "1").status_code == 200


def test_chunked_upload(ctx: Context, registry: registries.Registry, tmp_path: Path) -> None:
    record = service.install_builtin(ctx)
    pushed: list[PushedBlob] = []
    service.push(ctx, "busybox", f"{registry.host}/chunked/busybox:1", insecure=True, chunk_bytes=256 * 1024,
                 progress=pushed.append)
    assert {b.how for b in pushed} == {"uploaded"}
    assert record.layers[0].size > 256 * 1024, "the layer must span several chunks"
    fresh = open_context(tmp_path / "fresh", require_root=False)
    try:
        assert service.pull(fresh, f"{registry.host}/chunked/busybox:1", insecure=True).id == record.id
    finally:
        fresh.close()


def test_push_by_id_needs_a_target(ctx: Context) -> None:
    record = service.install_builtin(ctx)
    with pytest.raises(InvalidArgumentError, match="is an image id"):
        service.push(ctx, record.short_id, insecure=True)


def test_push_to_an_unreachable_registry_names_it(ctx: Context) -> None:
    service.install_builtin(ctx)
    port = registries.free_port()
    with pytest.raises(ImagePullError, match=f"127.0.0.1:{port}"):
        service.push(ctx, "busybox", f"127.0.0.1:{port}/x/y:1", insecure=True)


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_save_and_load_round_trip_through_skopeo(
    ctx: Context, registry: registries.Registry, tmp_path: Path, fmt: str
) -> None:
    record = service.pull(ctx, f"{registry.host}/src/multi:1", insecure=True)
    archive = tmp_path / f"multi-{fmt}.tar"
    service.save(ctx, [f"{registry.host}/src/multi:1"], archive, fmt=fmt)
    # skopeo reads what isobox wrote, and writes it back out in the other transport's terms...
    source = f"docker-archive:{archive}" if fmt == "docker" else f"oci-archive:{archive}"
    copied = tmp_path / "copied.tar"
    run("skopeo", "copy", "-q", source, f"docker-archive:{copied}:example.com/copied:1")
    with tarfile.open(copied) as tar:
        entries = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert entries[0]["RepoTags"] == ["example.com/copied:1"]
    # ...and isobox loads skopeo's archive: same image (config) id, layers unpacked.
    fresh = open_context(tmp_path / "fresh", require_root=False)
    try:
        loaded = service.load(fresh, copied)
        assert [r.id for r in loaded] == [record.id]
        assert fresh.images.resolve("example.com/copied:1").id == record.id
        assert (Path(fresh.images.layer_dirs(loaded[0])[0]) / "bin/busybox").is_file()
        mine = service.load(fresh, archive)
        assert [r.id for r in mine] == [record.id]
        assert fresh.images.resolve(f"{registry.host}/src/multi:1").id == record.id
    finally:
        fresh.close()


def test_load_oci_layout_made_by_skopeo(ctx: Context, tmp_path: Path) -> None:
    registry_less = tmp_path / "oci.tar"
    from fixtures.registry_images import layout

    run("skopeo", "copy", "-q", f"oci:{layout()}:zstd", f"oci-archive:{registry_less}:example.com/z:1")
    loaded = service.load(ctx, registry_less)
    assert len(loaded) == 1 and loaded[0].layers[0].media_type.endswith("+zstd")
    assert ctx.images.resolve("example.com/z:1").id == loaded[0].id
