"""Pull from a real docker-registry (plain HTTP), seeded by skopeo with images umoci and zstd made."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from fixtures import registry as registries
from fixtures.registry_images import layout, seed
from isobox.errors import NotFoundError
from isobox.images.pull import PullEvent, Stage
from isobox.images.store import DOCKER_MANIFEST, OCI_MANIFEST
from isobox.service import images as service
from isobox.service.context import Context, open_context

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("registry"))
    try:
        seed(server, "busybox", "lib/busybox:1")
        seed(server, "multi", "lib/multi:1")
        seed(server, "zstd", "lib/zstd:1")
        seed(server, "index", "lib/index:1", "--all")
        seed(server, "busybox", "lib/docker:1", "--format", "v2s2")
        seed(server, "index", "lib/list:1", "--all", "--format", "v2s2")  # a Docker manifest list
        yield server
    finally:
        server.stop()


def pull(ctx: Context, registry: registries.Registry, name: str, **options: object) -> service.ImageRecord:
    return service.pull(ctx, f"{registry.host}/{name}", insecure=True, **options)  # type: ignore[arg-type]


def layer_root(ctx: Context, record: service.ImageRecord, index: int) -> Path:
    return Path(ctx.images.layer_dirs(record)[index])


def test_pull_gzip_image_by_tag(ctx: Context, registry: registries.Registry) -> None:
    events: list[PullEvent] = []
    record = pull(ctx, registry, "lib/busybox:1", progress=events.append)
    assert record.manifest_media_type == OCI_MANIFEST
    assert record.platform == "linux/amd64"
    assert ctx.images.names(record.id) == [f"{registry.host}/lib/busybox:1"]
    root = layer_root(ctx, record, 0)
    assert (root / "bin/busybox").read_bytes() == Path("/bin/busybox").read_bytes()
    assert os.readlink(root / "bin/sh") == "busybox"
    assert ctx.images.config(record).cmd == ("sh",)
    stages = {e.stage for e in events}
    assert {Stage.RESOLVED, Stage.DOWNLOADING, Stage.UNPACKED, Stage.DONE} <= stages
    assert list(ctx.paths.tmp.iterdir()) == []


def test_multi_layer_whiteouts_hardlinks_and_ownership(ctx: Context, registry: registries.Registry) -> None:
    record = pull(ctx, registry, "lib/multi:1")
    assert len(record.layers) == 3
    first, second, third = (layer_root(ctx, record, i) for i in range(3))
    b, hard = os.stat(first / "data/b.txt"), os.stat(first / "data/hard.txt")
    assert b.st_ino == hard.st_ino, "a hard link inside the layer is preserved"
    assert (b.st_uid, b.st_gid, stat.S_IMODE(b.st_mode)) == (1000, 1000, 0o640)
    for hidden in (second / "data/a.txt", second / "opt/old"):  # umoci's .wh. entries → overlayfs whiteouts
        info = os.stat(hidden, follow_symlinks=False)
        assert stat.S_ISCHR(info.st_mode) and info.st_rdev == 0, hidden
    assert (second / "data/c.txt").read_text() == "c\n"
    assert os.getxattr(third / "opt/dir", "trusted.overlay.opaque") == b"y"
    assert not (third / "opt/dir/.wh..wh..opq").exists()
    assert (third / "opt/dir/two.txt").read_text() == "two\n"


def test_zstd_layer(ctx: Context, registry: registries.Registry) -> None:
    record = pull(ctx, registry, "lib/zstd:1")
    assert record.layers[0].media_type.endswith("+zstd")
    assert (layer_root(ctx, record, 0) / "bin/busybox").is_file()


def test_docker_schema2_manifest(ctx: Context, registry: registries.Registry) -> None:
    record = pull(ctx, registry, "lib/docker:1")
    assert record.manifest_media_type == DOCKER_MANIFEST
    assert record.layers[0].media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"


def test_index_picks_host_platform_or_the_requested_one(ctx: Context, registry: registries.Registry) -> None:
    amd64 = pull(ctx, registry, "lib/index:1")
    assert amd64.platform == "linux/amd64"
    arm64 = pull(ctx, registry, "lib/index:1", platform="linux/arm64")
    assert arm64.platform == "linux/arm64"
    assert arm64.id != amd64.id
    with pytest.raises(NotFoundError, match=r"no image for platform linux/s390x.*linux/amd64, linux/arm64/v8"):
        pull(ctx, registry, "lib/index:1", platform="linux/s390x")


def test_docker_manifest_list(ctx: Context, registry: registries.Registry) -> None:
    amd64 = pull(ctx, registry, "lib/list:1")
    arm64 = pull(ctx, registry, "lib/list:1", platform="linux/arm64/v8")
    assert (amd64.platform, arm64.platform) == ("linux/amd64", "linux/arm64")
    assert amd64.manifest_media_type == arm64.manifest_media_type == DOCKER_MANIFEST


def test_pull_by_digest_and_a_missing_tag(ctx: Context, registry: registries.Registry) -> None:
    first = pull(ctx, registry, "lib/busybox:1")
    by_digest = pull(ctx, registry, f"lib/busybox@{first.manifest_digest}")
    assert by_digest.id == first.id
    assert ctx.images.resolve(f"{registry.host}/lib/busybox@{first.manifest_digest}").id == first.id
    with pytest.raises(NotFoundError, match="MANIFEST_UNKNOWN"):
        pull(ctx, registry, "lib/busybox:nope")


def test_resume_from_a_partial_download(ctx: Context, registry: registries.Registry) -> None:
    """A partial file from an interrupted pull is continued with Range, not downloaded again."""
    probe = pull(ctx, registry, "lib/busybox:1")
    layer = probe.layers[0]
    service.remove(ctx, str(probe.id), force=True)
    assert not ctx.images.blobs.has(layer.digest)
    half = layer.size // 2
    partial = ctx.images.blobs.partial_path(layer.digest)
    partial.write_bytes(registry.blob_data(layer.digest).read_bytes()[:half])
    events: list[PullEvent] = []
    pull(ctx, registry, "lib/busybox:1", progress=events.append)
    progress = [e.current for e in events if e.stage is Stage.DOWNLOADING and e.digest == layer.digest]
    assert progress[0] == half and min(progress) == half, "the download restarted from 0"
    assert progress[-1] == layer.size
    assert not partial.exists()


def test_a_stale_partial_with_wrong_bytes_is_replaced(ctx: Context, registry: registries.Registry) -> None:
    probe = pull(ctx, registry, "lib/busybox:1")
    layer = probe.layers[0]
    service.remove(ctx, str(probe.id), force=True)
    ctx.images.blobs.partial_path(layer.digest).write_bytes(b"garbage" * 100)
    record = pull(ctx, registry, "lib/busybox:1")
    assert ctx.images.blobs.has(layer.digest) and record.id == probe.id


def test_two_concurrent_pulls_of_one_image(isobox_root: Path, registry: registries.Registry) -> None:
    # Two contexts (two database connections, as two processes have), opened one after the other: opening
    # a fresh database concurrently is state/db.py's business; the pulls themselves run at the same time.
    contexts = [open_context(isobox_root, require_root=False) for _ in range(2)]
    results: list[object] = []

    def one(context: Context) -> None:
        try:
            results.append(pull(context, registry, "lib/multi:1").id)
        except Exception as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=one, args=(context,)) for context in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for context in contexts:
        context.close()
    assert len(results) == 2 and len(set(results)) == 1 and isinstance(results[0], str), results
    context = open_context(isobox_root, require_root=False)
    try:
        assert len(service.list_images(context)) == 1
        assert len(list(context.paths.layers.iterdir())) == 3
        assert list(context.paths.tmp.iterdir()) == []
    finally:
        context.close()


@pytest.fixture
def redirecting_front(registry: registries.Registry) -> Iterator[tuple[str, list[str]]]:
    """A registry front that serves manifests itself (from the real registry) and answers every blob GET
    with a 307 to the real registry under another origin (localhost), as registries backed by S3/GCS do."""
    port = registry.host.rsplit(":", 1)[1]
    redirected: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # (http.server names it so)
            if "/blobs/" in self.path:
                redirected.append(self.path)
                self.send_response(307)
                self.send_header("Location", f"http://localhost:{port}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            upstream = httpx.get(f"{registry.url}{self.path}", headers={"Accept": self.headers.get("Accept", "")})
            self.send_response(upstream.status_code)
            for key in ("Content-Type", "Docker-Content-Digest"):
                if key in upstream.headers:
                    self.send_header(key, upstream.headers[key])
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", redirected
    server.shutdown()
    server.server_close()


def test_blob_redirects_are_followed(ctx: Context, redirecting_front: tuple[str, list[str]]) -> None:
    front, redirected = redirecting_front
    record = service.pull(ctx, f"{front}/lib/multi:1", insecure=True)
    assert len(redirected) == 1 + len(record.layers), "config and layers came through the redirect"
    assert (layer_root(ctx, record, 0) / "bin/busybox").is_file()


def test_layout_fixture_is_what_the_tests_expect() -> None:
    assert (layout() / "oci-layout").is_file()
