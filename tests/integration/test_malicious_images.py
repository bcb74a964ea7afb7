"""Hostile and malformed images, pulled from a real registry: each must fail with its specific error (or be
neutralised), leave nothing in the store (no image record, layer directory, blob or temporary file) and
change nothing outside it (a canary directory next to the store, and the host paths the layer names)."""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

from fixtures import registry as registries
from fixtures.registry_crafted import (
    Member,
    config_for,
    digest_of,
    push_image,
    put_manifest,
    tar_bytes,
    upload_blob,
)
from isobox.errors import DigestMismatchError, ImageError, ManifestError, UnsafeLayerError
from isobox.images.unpack import UnpackPolicy
from isobox.service import images as service
from isobox.service.context import Context

pytestmark = pytest.mark.integration
_names = itertools.count()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture
def canary(isobox_root: Path) -> Iterator[Path]:
    """A directory beside the store (lib/) that a layer escaping its directory would reach."""
    outside = isobox_root / "outside"
    outside.mkdir()
    (outside / "canary").write_text("untouched\n")
    before = _snapshot(outside)
    yield outside
    assert _snapshot(outside) == before, "something outside the store changed"


def _snapshot(path: Path) -> dict[str, tuple[int, int, bytes]]:
    found = {}
    for entry in [path, *sorted(path.rglob("*"))]:
        info = entry.lstat()
        found[str(entry)] = (info.st_mode, info.st_size, entry.read_bytes() if entry.is_file() else b"")
    return found


def assert_store_empty(ctx: Context) -> None:
    assert service.list_images(ctx) == []
    assert list(ctx.paths.layers.iterdir()) == [], "a layer directory was left"
    assert ctx.images.blobs.all_digests() == [], "a blob was left"
    assert list(ctx.paths.tmp.iterdir()) == [], "a temporary file was left"


def pull_crafted(ctx: Context, registry: registries.Registry, tars: list[bytes], **options: object) -> object:
    repository = f"evil/image{next(_names)}"
    push_image(registry, repository, "1", tars, **options)  # type: ignore[arg-type]
    return service.pull(ctx, f"{registry.host}/{repository}:1", insecure=True)


def relative_to_layer(ctx: Context, target: Path) -> str:
    """A '../..' path from inside a layer directory (lib/layers/<chain>/diff/) to ``target``."""
    return os.path.relpath(target, ctx.paths.layers / ("0" * 64) / "diff")


# ---- hostile tar entries -----------------------------------------------------------------------


def test_dotdot_path(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    evil = tar_bytes([Member("bin/ok", data=b"ok"), Member(relative_to_layer(ctx, canary / "canary"), data=b"pwned")])
    with pytest.raises(UnsafeLayerError, match=r"has a '\.\.' component"):
        pull_crafted(ctx, registry, [evil])
    assert_store_empty(ctx)


def test_absolute_path_is_kept_inside_the_layer(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    target = canary / "absolute-file"
    record = pull_crafted(ctx, registry, [tar_bytes([Member(str(target), data=b"inside")])])
    assert not target.exists()
    inside = Path(ctx.images.layer_dirs(record)[0]) / str(target).lstrip("/")  # type: ignore[arg-type]
    assert inside.read_bytes() == b"inside"
    service.remove(ctx, record.id, force=True)  # type: ignore[attr-defined]
    assert_store_empty(ctx)


def test_symlink_then_write_through_it(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    evil = tar_bytes([Member("escape", kind="symlink", target=str(canary)),
                      Member("escape/canary", data=b"pwned")])
    with pytest.raises(UnsafeLayerError, match="goes through 'escape'"):
        pull_crafted(ctx, registry, [evil])
    assert_store_empty(ctx)


def test_relative_symlink_chain_then_write(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    evil = tar_bytes([Member("a", kind="dir", mode=0o755),
                      Member("a/up", kind="symlink", target=relative_to_layer(ctx, canary)),
                      Member("a/up/new-file", data=b"pwned")])
    with pytest.raises(UnsafeLayerError, match="goes through 'up'"):
        pull_crafted(ctx, registry, [evil])
    assert_store_empty(ctx)


def test_hardlink_to_a_file_outside(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    evil = tar_bytes([Member("steal", kind="hardlink", target=str(canary / "canary"))])
    with pytest.raises(UnsafeLayerError, match="which this layer does not have"):
        pull_crafted(ctx, registry, [evil])
    assert_store_empty(ctx)


def test_hardlink_via_dotdot(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    evil = tar_bytes([Member("steal", kind="hardlink", target=relative_to_layer(ctx, canary / "canary"))])
    with pytest.raises(UnsafeLayerError, match=r"'\.\.' component"):
        pull_crafted(ctx, registry, [evil])
    assert_store_empty(ctx)


def test_hardlink_through_a_symlinked_directory(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    evil = tar_bytes([Member("dir", kind="symlink", target=str(canary)),
                      Member("steal", kind="hardlink", target="dir/canary")])
    with pytest.raises(UnsafeLayerError, match="goes through 'dir'"):
        pull_crafted(ctx, registry, [evil])
    assert_store_empty(ctx)


def test_hardlink_to_an_outward_symlink_cannot_chmod_the_target(
    ctx: Context, registry: registries.Registry, canary: Path
) -> None:
    """A hard link to a symlink is another name of the symlink; applying the entry's mode must not follow it."""
    evil = tar_bytes([Member("s", kind="symlink", target=str(canary / "canary")),
                      Member("h", kind="hardlink", target="s", mode=0o777)])
    record = pull_crafted(ctx, registry, [evil])  # harmless once neutralised: the canary fixture checks modes
    service.remove(ctx, record.id, force=True)  # type: ignore[attr-defined]
    assert_store_empty(ctx)


def test_directory_replaced_by_an_outward_symlink_keeps_its_mode_inside(
    ctx: Context, registry: registries.Registry, canary: Path
) -> None:
    """Directory modes are applied at the end; by then the name may be a symlink pointing out."""
    evil = tar_bytes([Member("d", kind="dir", mode=0o777), Member("d", kind="symlink", target=str(canary))])
    record = pull_crafted(ctx, registry, [evil])
    assert os.readlink(Path(ctx.images.layer_dirs(record)[0]) / "d") == str(canary)  # type: ignore[attr-defined]
    service.remove(ctx, record.id, force=True)  # type: ignore[attr-defined]
    assert_store_empty(ctx)


@pytest.mark.parametrize("name", [".wh...", "x/.wh..", "x/.wh."])
def test_whiteout_of_an_invalid_name(ctx: Context, registry: registries.Registry, canary: Path, name: str) -> None:
    evil = tar_bytes([Member("x", kind="dir", mode=0o755), Member(name)])
    with pytest.raises(UnsafeLayerError, match="whiteout of an invalid name"):
        pull_crafted(ctx, registry, [evil])
    assert_store_empty(ctx)


def test_whiteout_through_a_symlink(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    evil = tar_bytes([Member("s", kind="symlink", target=str(canary)), Member("s/.wh.canary")])
    with pytest.raises(UnsafeLayerError, match="goes through 's'"):
        pull_crafted(ctx, registry, [evil])
    assert_store_empty(ctx)


def test_opaque_whiteout_through_a_symlink(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    evil = tar_bytes([Member("s", kind="symlink", target=str(canary)), Member("s/.wh..wh..opq")])
    with pytest.raises(UnsafeLayerError, match="goes through 's'"):
        pull_crafted(ctx, registry, [evil])
    assert_store_empty(ctx)
    assert "trusted.overlay.opaque" not in os.listxattr(canary)


def test_device_node(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    with pytest.raises(UnsafeLayerError, match="device node, which the unpack policy forbids"):
        pull_crafted(ctx, registry, [tar_bytes([Member("dev/sda", kind="chardev")])])
    assert_store_empty(ctx)


@pytest.mark.parametrize(
    "xattr", ["trusted.overlay.opaque", "trusted.overlay.redirect", "user.overlay.redirect", "security.selinux"]
)
def test_forbidden_xattrs(ctx: Context, registry: registries.Registry, canary: Path, xattr: str) -> None:
    evil = tar_bytes([Member("d", kind="dir", pax={f"SCHILY.xattr.{xattr}": "y"})])
    with pytest.raises(UnsafeLayerError, match=f"carries the xattr '{xattr}'"):
        pull_crafted(ctx, registry, [evil])
    assert_store_empty(ctx)


def test_gzip_bomb_in_a_file(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    ctx.images.policy = UnpackPolicy(max_bytes=1 << 20)
    bomb = tar_bytes([Member("zeros", data=bytes(8 << 20))])
    with pytest.raises(UnsafeLayerError, match="past its limit of 1048576 bytes"):
        pull_crafted(ctx, registry, [bomb])
    assert_store_empty(ctx)


def test_gzip_bomb_after_the_end_of_the_archive(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    ctx.images.policy = UnpackPolicy(max_bytes=1 << 20)
    bomb = tar_bytes([Member("small", data=b"x")], trailing=bytes(80 << 20))
    assert len(gzip.compress(bomb)) < 1 << 20
    with pytest.raises(UnsafeLayerError, match=r"decompresses to more than \d+ bytes: the limit of a layer's size"):
        pull_crafted(ctx, registry, [bomb])
    assert_store_empty(ctx)


# ---- malformed content -------------------------------------------------------------------------


def test_layer_with_wrong_diff_id(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    good = tar_bytes([Member("a", data=b"a")])
    with pytest.raises(DigestMismatchError, match=r"unpacks to sha256:.*but the image config says"):
        pull_crafted(ctx, registry, [good], config=config_for([tar_bytes([Member("b", data=b"b")])]))
    assert_store_empty(ctx)


def test_diff_id_that_is_a_path(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    good = tar_bytes([Member("a", data=b"a")])
    config = json.dumps({"os": "linux", "architecture": "amd64",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:../../outside"]}}).encode()
    with pytest.raises(ManifestError, match=r"diff_id of image .* is not a valid digest: .sha256:\.\./\.\./outside"):
        pull_crafted(ctx, registry, [good], config=config)
    assert_store_empty(ctx)


def test_blob_corrupted_in_the_registry(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    manifest = push_image(registry, "evil/corrupt", "1", [tar_bytes([Member("a", data=b"a" * 4096)])])
    layer = manifest["layers"][0]  # type: ignore[index]
    data = registry.blob_data(layer["digest"])
    data.write_bytes(bytes(len(data.read_bytes())))  # same length, other bytes
    with pytest.raises(DigestMismatchError, match=f"expected {layer['digest']}"):
        service.pull(ctx, f"{registry.host}/evil/corrupt:1", insecure=True)
    assert_store_empty(ctx)


def test_truncated_blob(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    manifest = push_image(registry, "evil/truncated", "1", [tar_bytes([Member("a", data=os.urandom(8192))])])
    layer = manifest["layers"][0]  # type: ignore[index]
    data = registry.blob_data(layer["digest"])
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(DigestMismatchError,
                       match=rf"blob {layer['digest']} of image .*evil/truncated:1 is truncated: 100 of"):
        service.pull(ctx, f"{registry.host}/evil/truncated:1", insecure=True)
    assert_store_empty(ctx)


def test_unknown_layer_media_type(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    with pytest.raises(ManifestError, match="unsupported media type 'application/x-evil'"):
        pull_crafted(ctx, registry, [tar_bytes([Member("a")])], layer_type="application/x-evil")
    assert_store_empty(ctx)


@pytest.fixture
def huge_manifest_server() -> Iterator[str]:
    """A fake registry serving a 5 MiB manifest (docker-registry itself refuses to store one over 4 MiB),
    once with Content-Length (/sized) and once close-delimited without it (/streamed)."""
    body = json.dumps({"schemaVersion": 2, "padding": "x" * (5 << 20)}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            if "/sized/" in self.path:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client hangs up early, as it should
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("repository", ["sized", "streamed"])
def test_absurd_manifest_size(ctx: Context, huge_manifest_server: str, canary: Path, repository: str) -> None:
    with pytest.raises(ManifestError, match=f"manifest {repository}:1 is .*more than the limit of 4194304"):
        service.pull(ctx, f"{huge_manifest_server}/{repository}:1", insecure=True)
    assert_store_empty(ctx)


def test_index_that_declares_an_absurd_manifest(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    manifest = push_image(registry, "evil/index", "plain", [tar_bytes([Member("a")])])
    data = json.dumps(manifest).encode()
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": manifest["mediaType"], "digest": upload_blob(registry, "evil/index", b"{}"),
         "size": 1 << 40, "platform": {"os": "linux", "architecture": "amd64"}}]}
    put_manifest(registry, "evil/index", "1", json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json")
    assert data
    with pytest.raises(ManifestError, match="declares a manifest of 1099511627776 bytes"):
        service.pull(ctx, f"{registry.host}/evil/index:1", insecure=True)
    assert_store_empty(ctx)


def test_not_a_tar_at_all(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    with pytest.raises(ImageError, match="not a valid tar stream"):
        pull_crafted(ctx, registry, [b"this is not a tar archive" * 40])
    assert_store_empty(ctx)


# ---- hostile archives (isobox load) -------------------------------------------------------------


def _docker_archive(path: Path, manifest: object, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in {"manifest.json": json.dumps(manifest).encode(), **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_archive_naming_a_path_outside_itself(ctx: Context, tmp_path: Path, canary: Path) -> None:
    archive = tmp_path / "evil.tar"
    _docker_archive(archive, [{"Config": str(canary / "canary"), "RepoTags": ["evil:1"], "Layers": []}], {})
    with pytest.raises(ManifestError, match="has no member"):
        service.load(ctx, archive)
    assert_store_empty(ctx)


def test_archive_with_an_unsafe_layer_leaves_nothing(ctx: Context, tmp_path: Path, canary: Path) -> None:
    good = tar_bytes([Member("ok", data=b"fine")])
    evil = tar_bytes([Member("escape", kind="symlink", target=str(canary)), Member("escape/x", data=b"pwned")])
    config = config_for([good, evil])
    archive = tmp_path / "evil.tar"
    _docker_archive(archive, [{"Config": "config.json", "RepoTags": ["evil:1"], "Layers": ["a.tar", "b.tar"]}],
                    {"config.json": config, "a.tar": good, "b.tar": evil})
    with pytest.raises(UnsafeLayerError, match="goes through 'escape'"):
        service.load(ctx, archive)
    assert_store_empty(ctx)


def test_oci_archive_with_a_blob_that_lies_about_its_digest(ctx: Context, tmp_path: Path, canary: Path) -> None:
    layer_blob = gzip.compress(tar_bytes([Member("a", data=b"a")]))
    config = config_for([tar_bytes([Member("a", data=b"a")])])
    digest = digest_of
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": digest(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": digest(layer_blob), "size": len(layer_blob)}]}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "digest": digest(manifest), "size": len(manifest)}]}
    archive = tmp_path / "evil-oci.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": json.dumps(index).encode(),
                           f"blobs/sha256/{digest(manifest)[7:]}": manifest,
                           f"blobs/sha256/{digest(config)[7:]}": config,
                           f"blobs/sha256/{digest(layer_blob)[7:]}": layer_blob[:-8] + bytes(8)}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DigestMismatchError, match=f"expected {digest(layer_blob)}"):
        service.load(ctx, archive)
    assert_store_empty(ctx)


# ---- layer semantics and limits (OCI image-spec layer.md; Python tarfile's lenient end) ----------


def test_a_whiteout_leaves_the_file_of_its_own_layer(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    """image-spec layer.md: a whiteout hides only lower layers' files; the file of the same layer stays."""
    layer = tar_bytes([Member("etc", kind="dir", mode=0o755), Member("etc/config", data=b"kept"),
                       Member("etc/.wh.config"), Member("etc/.wh.later"), Member("etc/later", data=b"also kept")])
    record = pull_crafted(ctx, registry, [layer])
    root = Path(ctx.images.layer_dirs(record)[0])  # type: ignore[attr-defined]
    assert (root / "etc/config").read_bytes() == b"kept"
    assert (root / "etc/later").read_bytes() == b"also kept"
    service.remove(ctx, record.id, force=True)  # type: ignore[attr-defined]
    assert_store_empty(ctx)


def _with_bad_second_header(layer: bytes) -> bytes:
    first = tarfile.TarInfo.frombuf(layer[:512], "utf-8", "surrogateescape")
    offset = 512 + (first.size + 511) // 512 * 512
    return layer[:offset] + layer[offset : offset + 148] + b"0000000\0" + layer[offset + 156 :]


def test_a_bad_header_checksum_after_the_first_entry(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("first", "second", "third"):
            info = tarfile.TarInfo(name)
            info.size = len(name)
            tar.addfile(info, io.BytesIO(name.encode()))
    with pytest.raises(UnsafeLayerError, match="invalid tar header at byte 1024"):
        pull_crafted(ctx, registry, [_with_bad_second_header(buffer.getvalue())])
    assert_store_empty(ctx)


def test_a_compression_bomb_is_stopped_by_the_ratio(
    cli: Cli, registry: registries.Registry, canary: Path, monkeypatch: pytest.MonkeyPatch, isobox_root: Path
) -> None:
    """32 MiB of zeros in a 32 KiB gzip, against a ratio of 50 past 4 MiB, set where a user sets it."""
    repository = f"evil/bomb{next(_names)}"
    push_image(registry, repository, "1", [tar_bytes([Member("zeros", data=bytes(32 << 20))])])
    monkeypatch.setenv("ISOBOX_UNPACK_MAX_RATIO", "50")
    monkeypatch.setenv("ISOBOX_UNPACK_RATIO_FROM", "4m")
    done = cli("pull", "--insecure", f"{registry.host}/{repository}:1")
    assert done.returncode != 0
    assert "50 times its compressed size" in done.stderr and "decompression bomb" in done.stderr, done.stderr
    layers = isobox_root / "lib" / "layers"
    assert list(layers.iterdir()) == [] and list((isobox_root / "lib" / "tmp").iterdir()) == []


def test_the_free_space_reserve(ctx: Context, registry: registries.Registry, canary: Path) -> None:
    info = os.statvfs(ctx.paths.layers)
    ctx.images.policy = UnpackPolicy(reserve_bytes=info.f_bavail * info.f_frsize - (8 << 20))
    with pytest.raises(ImageError, match=r"would leave less than \d+ bytes free"):
        pull_crafted(ctx, registry, [tar_bytes([Member("big", data=os.urandom(24 << 20))])])
    assert_store_empty(ctx)


def test_a_very_deep_layer_is_removed_by_rmi_and_prune(
    ctx: Context, registry: registries.Registry, canary: Path
) -> None:
    deep = "d/" * 1500
    layer = tar_bytes([Member(deep + "file", data=b"bottom"), Member(deep + "locked", kind="dir", mode=0o000)])
    record = pull_crafted(ctx, registry, [layer])
    assert len(list(ctx.paths.layers.iterdir())) == 1
    service.remove(ctx, record.id)  # type: ignore[attr-defined]
    service.prune(ctx)
    assert_store_empty(ctx)
