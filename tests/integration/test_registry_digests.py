"""RepoDigests against a real docker-registry: every digest an image was pulled or pushed by is kept, digest
references resolve without the registry, and the isolation policy judges digests as users see them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures import registry as registries
from fixtures.registry_images import seed
from isobox.errors import ImagePullError, NotFoundError
from isobox.model.pull import PullPolicy
from isobox.model.spec import WorkloadSpec
from isobox.service import images as service
from isobox.service import policy
from isobox.service.context import Context

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("registry"))
    try:
        seed(server, "busybox", "lib/busybox:1")
        seed(server, "busybox", "lib/busybox:docker", "--format", "v2s2")  # same config, another manifest
        seed(server, "index", "lib/index:1", "--all")
        yield server
    finally:
        server.stop()


def served_digest(registry: registries.Registry, repository: str, tag: str) -> str:
    accept = ", ".join(("application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json"))
    response = httpx.head(f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": accept})
    return str(response.headers["Docker-Content-Digest"])


def isobox(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "isobox.cli.main", *args], env=dict(os.environ, ISOBOX_ROOT=str(root)),
                          capture_output=True, text=True, timeout=120)


def test_an_image_keeps_every_manifest_digest_it_was_pulled_by(
    ctx: Context, registry: registries.Registry, isobox_root: Path
) -> None:
    oci = service.pull(ctx, f"{registry.host}/lib/busybox:1", insecure=True)
    docker = service.pull(ctx, f"{registry.host}/lib/busybox:docker", insecure=True)
    assert oci.id == docker.id and oci.manifest_digest != docker.manifest_digest
    expected = {f"{registry.host}/lib/busybox@{served_digest(registry, 'lib/busybox', tag)}" for tag in ("1", "docker")}
    assert set(service.inspect(ctx, oci.id).repo_digests) == expected
    inspected = json.loads(isobox(isobox_root, "image", "inspect", oci.id).stdout)
    assert set(inspected[0]["RepoDigests"]) == expected
    listing = isobox(isobox_root, "images", "--digests").stdout
    for digest in expected:
        assert digest.split("@")[1] in listing
    assert "DIGEST" in listing.splitlines()[0]


def test_a_multi_platform_pull_records_the_index_digest(ctx: Context, registry: registries.Registry) -> None:
    index_digest = served_digest(registry, "lib/index", "1")
    record = service.pull(ctx, f"{registry.host}/lib/index:1", insecure=True)
    assert record.manifest_digest != index_digest
    assert service.inspect(ctx, record.id).repo_digests == (f"{registry.host}/lib/index@{index_digest}",)
    assert ctx.images.resolve(f"{registry.host}/lib/index@{index_digest}").id == record.id
    facts = policy.gather_facts(ctx, WorkloadSpec(image=f"{registry.host}/lib/index@{index_digest}"), record,
                                scan=False)
    assert facts.digest_pinned and facts.repository == f"{registry.host}/lib/index"
    assert index_digest in facts.digests and record.manifest_digest in facts.digests


def test_a_digest_pin_needs_the_repository_and_the_digest(ctx: Context, registry: registries.Registry) -> None:
    digest = served_digest(registry, "lib/busybox", "1")
    record = service.pull(ctx, f"{registry.host}/lib/busybox@{digest}", insecure=True)
    assert ctx.images.names(record.id) == [], "a digest reference is not a tag"
    # The same content under another repository's name is not this image's RepoDigest.
    with pytest.raises(NotFoundError):
        ctx.images.resolve(f"{registry.host}/other/app@{digest}")
    facts = policy.gather_facts(ctx, WorkloadSpec(image=f"{registry.host}/other/app@{digest}"), record, scan=False)
    assert facts.repository == f"{registry.host}/lib/busybox", "judged by its own repository, not the one written"
    own = policy.gather_facts(ctx, WorkloadSpec(image=f"{registry.host}/lib/busybox@{digest}"), record, scan=False)
    assert own.digest_pinned and own.image == f"{registry.host}/lib/busybox@{digest}"


@pytest.fixture
def short_lived_registry(tmp_path: Path) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path / "registry")
    try:
        seed(server, "index", "lib/busybox:1", "--all")
        yield server
    finally:
        server.stop()


def test_a_pulled_digest_runs_without_the_registry(
    ctx: Context, short_lived_registry: registries.Registry, isobox_root: Path
) -> None:
    digest = served_digest(short_lived_registry, "lib/busybox", "1")  # an index's: what users pin
    name = f"{short_lived_registry.host}/lib/busybox@{digest}"
    record = service.pull(ctx, name, insecure=True)
    short_lived_registry.stop()
    assert service.ensure(ctx, name).id == record.id
    with pytest.raises(ImagePullError):  # --pull always goes to the registry, which is gone
        service.ensure(ctx, name, policy=PullPolicy.ALWAYS, insecure=True)
    done = isobox(isobox_root, "run", "--rm", name, "echo", "local")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "local"
