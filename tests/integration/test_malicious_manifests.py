"""Manifests that two clients could read as two different images (CVE-2021-41190), served byte for byte by a
front to a real registry (which holds the blobs): each pull must be refused and leave nothing behind."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures import registry as registries
from fixtures.registry_crafted import OCI_MANIFEST, CraftedFront, Member, push_image, tar_bytes
from isobox.errors import ManifestError
from isobox.service import images as service
from isobox.service.context import Context

pytestmark = pytest.mark.integration

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def image(registry: registries.Registry) -> dict[str, object]:
    """A good image in the real registry (repository app/good): its blobs serve every crafted document."""
    return push_image(registry, "app/good", "1", [tar_bytes([Member("etc/os-release", data=b"ID=good\n")])])


@pytest.fixture
def front(registry: registries.Registry, image: dict[str, object]) -> Iterator[CraftedFront]:
    server = CraftedFront(registry, "app/good")
    yield server
    server.close()


def assert_nothing_stored(ctx: Context) -> None:
    assert service.list_images(ctx) == []
    assert list(ctx.paths.layers.iterdir()) == []
    assert ctx.images.blobs.all_digests() == []


def index_of(manifest: bytes, media_type: str) -> dict[str, object]:
    from fixtures.registry_crafted import digest_of

    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": media_type, "digest": digest_of(manifest), "size": len(manifest),
         "platform": {"os": "linux", "architecture": "amd64"}}]}


def pull(ctx: Context, front: CraftedFront, repository: str) -> object:
    return service.pull(ctx, f"{front.host}/{repository}:1", insecure=True)


@pytest.mark.parametrize("content_type", ["", OCI_MANIFEST], ids=["no-content-type", "sent-as-manifest"])
def test_a_document_that_is_both_a_manifest_and_an_index(
    ctx: Context, registry: registries.Registry, image: dict[str, object], front: CraftedFront, content_type: str
) -> None:
    good = json.dumps({k: v for k, v in image.items() if k != "mediaType"}).encode()
    # The "manifests" list points at the good manifest itself: read as an index, this document names it.
    both = {**json.loads(good), **index_of(good, OCI_MANIFEST)}
    del both["mediaType"]
    front.serve("app/both", "1", json.dumps(both).encode(), content_type)
    front.serve("app/both", "good", good, OCI_MANIFEST)
    expected = "ambiguous" if not content_type else "with a 'manifests' list"
    with pytest.raises(ManifestError, match=expected):
        pull(ctx, front, "app/both")
    assert_nothing_stored(ctx)


def test_an_index_entry_whose_type_the_manifest_contradicts(
    ctx: Context, image: dict[str, object], front: CraftedFront
) -> None:
    manifest = json.dumps(image).encode()  # says it is an OCI manifest
    front.serve("app/lying-entry", "platform", manifest, "")
    index = json.dumps(index_of(manifest, DOCKER_MANIFEST)).encode()  # the entry says Docker schema 2
    front.serve("app/lying-entry", "1", index, OCI_INDEX)
    with pytest.raises(ManifestError, match=re.escape(f"but the descriptor pointing to it says {DOCKER_MANIFEST!r}")):
        pull(ctx, front, "app/lying-entry")
    assert_nothing_stored(ctx)


@pytest.mark.parametrize("content_type", [DOCKER_MANIFEST, OCI_INDEX])
def test_a_content_type_that_contradicts_the_manifest(
    ctx: Context, image: dict[str, object], front: CraftedFront, content_type: str
) -> None:
    front.serve("app/lying-registry", "1", json.dumps(image).encode(), content_type)
    with pytest.raises(ManifestError, match=re.escape(f"the registry sent it as {content_type!r}")):
        pull(ctx, front, "app/lying-registry")
    assert_nothing_stored(ctx)


def test_the_front_serves_a_good_image_through(
    ctx: Context, image: dict[str, object], front: CraftedFront, isobox_root: Path
) -> None:
    """The same front with honest headers: the pull works (so the refusals above are the checks', not the front's)."""
    manifest = json.dumps(image).encode()
    front.serve("app/honest", "platform", manifest, OCI_MANIFEST)
    front.serve("app/honest", "1", json.dumps(index_of(manifest, OCI_MANIFEST)).encode(), OCI_INDEX)
    record = pull(ctx, front, "app/honest")
    assert service.list_images(ctx)[0].id == record.id  # type: ignore[attr-defined]
