"""The layer unpacker on its own: formats, tar semantics, metadata, limits. (Hostile layers pulled from a
real registry are in tests/integration/test_malicious_images.py.)"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from isobox.errors import ImageError, InvalidArgumentError, UnsafeLayerError
from isobox.images.unpack import UnpackPolicy, split_member_name, unpack_layer

ROOT = os.geteuid() == 0
# Entries carry uid/gid 0 and the unpacker applies ownership, which needs root.
needs_root = pytest.mark.skipif(not ROOT, reason="unpacking sets file ownership: root only")


def build(*entries: tuple[str, str, bytes | str, int]) -> bytes:
    """(name, kind, data-or-target, mode) → tar bytes; kinds: file dir symlink hardlink fifo."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, 1_000_000
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = payload if isinstance(payload, str) else ""
            tar.addfile(info)
    return buffer.getvalue()


def unpack(tmp_path: Path, blob: bytes, policy: UnpackPolicy = UnpackPolicy()) -> tuple[Path, str]:
    source = tmp_path / "layer.blob"
    source.write_bytes(blob)
    dest = tmp_path / "diff"
    dest.mkdir()
    return dest, unpack_layer(source, dest, policy=policy, what="test-layer").diff_id


SAMPLE = build(("etc", "dir", b"", 0o755), ("etc/hosts", "file", "127.0.0.1 localhost\n", 0o644),
               ("bin/tool", "file", b"#!/bin/sh\n", 0o755), ("bin/alias", "symlink", "tool", 0o777),
               ("bin/copy", "hardlink", "bin/tool", 0o755), ("ro", "dir", b"", 0o555),
               ("ro/inside", "file", "x", 0o444), ("pipe", "fifo", b"", 0o600))


@needs_root
@pytest.mark.parametrize("compress", [lambda b: b, lambda b: gzip.compress(b, mtime=0),
                                      lambda b: zstandard.ZstdCompressor().compress(b)], ids=["plain", "gzip", "zstd"])
def test_formats_and_diff_id(tmp_path: Path, compress: object) -> None:
    dest, diff_id = unpack(tmp_path, compress(SAMPLE))  # type: ignore[operator]
    assert diff_id == "sha256:" + hashlib.sha256(SAMPLE).hexdigest()
    assert (dest / "etc/hosts").read_text() == "127.0.0.1 localhost\n"


@needs_root
def test_metadata_is_preserved(tmp_path: Path) -> None:
    dest, _ = unpack(tmp_path, SAMPLE)
    assert stat.S_IMODE(os.stat(dest / "bin/tool").st_mode) == 0o755
    assert os.readlink(dest / "bin/alias") == "tool"
    assert os.stat(dest / "bin/copy").st_ino == os.stat(dest / "bin/tool").st_ino
    assert stat.S_IMODE(os.stat(dest / "ro").st_mode) == 0o555, "directory modes are applied after children"
    assert (dest / "ro/inside").read_text() == "x"
    assert stat.S_ISFIFO(os.stat(dest / "pipe").st_mode)
    assert os.stat(dest / "etc/hosts").st_mtime == 1_000_000
    assert stat.S_IMODE(os.stat(dest / "bin").st_mode) == 0o755, "implicit parents are created 0755"


@needs_root
def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    layer = build(("a", "file", "first", 0o644), ("a", "file", "second", 0o644),
                  ("d", "dir", b"", 0o755), ("d/x", "file", "x", 0o644), ("d", "dir", b"", 0o700),
                  ("f", "dir", b"", 0o755), ("f", "file", "now a file", 0o644))
    dest, _ = unpack(tmp_path, layer)
    assert (dest / "a").read_text() == "second"
    assert (dest / "d/x").exists(), "a directory entry merges with an existing directory"
    assert stat.S_IMODE(os.stat(dest / "d").st_mode) == 0o700, "the last entry's mode wins"
    assert (dest / "f").read_text() == "now a file"


def test_member_names_are_normalised() -> None:
    assert split_member_name("./a//b/") == ["a", "b"]
    assert split_member_name("/etc/passwd") == ["etc", "passwd"]
    assert split_member_name("./") == []
    with pytest.raises(UnsafeLayerError):
        split_member_name("a/../../b")


@needs_root
def test_entry_limit(tmp_path: Path) -> None:
    layer = build(*((f"f{i}", "file", "", 0o644) for i in range(10)))
    with pytest.raises(UnsafeLayerError, match="exceeds the limit of 5 entries"):
        unpack(tmp_path, layer, UnpackPolicy(max_entries=5))


@needs_root
def test_size_limit_counts_all_files(tmp_path: Path) -> None:
    layer = build(*((f"f{i}", "file", b"x" * 400, 0o644) for i in range(4)))
    with pytest.raises(UnsafeLayerError, match="past its limit of 1000 bytes"):
        unpack(tmp_path, layer, UnpackPolicy(max_bytes=1000))


@needs_root
def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    blob = gzip.compress(SAMPLE)
    with pytest.raises(ImageError, match="test-layer"):
        unpack(tmp_path, blob[: len(blob) // 2])


@pytest.mark.skipif(not ROOT, reason="whiteouts are 0/0 character devices and trusted.* xattrs: root only")
def test_whiteouts_become_overlayfs_whiteouts(tmp_path: Path) -> None:
    layer = build(("d", "dir", b"", 0o755), ("d/.wh..wh..opq", "file", b"", 0o644), ("d/.wh.gone", "file", b"", 0o644))
    dest, _ = unpack(tmp_path, layer)
    assert os.getxattr(dest / "d", "trusted.overlay.opaque") == b"y"
    info = os.stat(dest / "d/gone", follow_symlinks=False)
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == 0
    assert sorted(os.listdir(dest / "d")) == ["gone"]


@pytest.mark.skipif(not ROOT, reason="mknod needs root")
def test_devices_allowed_only_by_policy(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("null")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(info)
    dest, _ = unpack(tmp_path, buffer.getvalue(), UnpackPolicy(allow_devices=True))
    assert os.stat(dest / "null").st_rdev == os.makedev(1, 3)


@needs_root
def test_a_cached_directory_replaced_by_a_symlink_is_not_written_through(tmp_path: Path) -> None:
    """A later entry replaces a directory that earlier entries were written into by a symlink pointing out."""
    outside = tmp_path / "outside"
    outside.mkdir()
    layer = build(("d", "dir", b"", 0o755), ("d/x", "file", "x", 0o644),
                  ("d", "symlink", str(outside), 0o777), ("d/y", "file", "pwned", 0o644))
    with pytest.raises(UnsafeLayerError, match="goes through 'd'"):
        unpack(tmp_path, layer)
    assert list(outside.iterdir()) == []


@needs_root
def test_many_directories_and_no_descriptor_leak(tmp_path: Path) -> None:
    entries = [(f"d{i}/sub/f", "file", str(i), 0o644) for i in range(400)]
    entries += [(f"d{i}/sub/g", "file", str(i), 0o644) for i in range(0, 400, 7)]  # revisit evicted ones
    dest, _ = unpack(tmp_path, build(*entries))
    assert all((dest / f"d{i}/sub/f").read_text() == str(i) for i in range(400))
    assert all((dest / f"d{i}/sub/g").read_text() == str(i) for i in range(0, 400, 7))
    assert len(os.listdir("/proc/self/fd")) < 64, "no directory descriptor outlives the unpack"


# ---- whiteouts of the same layer, the end of the archive, bombs, free space --------------------


@pytest.mark.skipif(not ROOT, reason="whiteouts are 0/0 character devices: root only")
@pytest.mark.parametrize("whiteout_first", [False, True], ids=["file-then-whiteout", "whiteout-then-file"])
def test_a_whiteout_never_hides_an_entry_of_its_own_layer(tmp_path: Path, whiteout_first: bool) -> None:
    entries = [("d", "dir", b"", 0o755), ("d/keep", "file", "kept", 0o644), ("d/sub", "dir", b"", 0o755),
               ("d/sub/f", "file", "deep", 0o644)]
    whiteouts = [("d/.wh.keep", "file", b"", 0o644), ("d/.wh.sub", "file", b"", 0o644)]
    dest, _ = unpack(tmp_path, build(*(whiteouts + entries if whiteout_first else entries + whiteouts)))
    assert (dest / "d/keep").read_text() == "kept"
    assert (dest / "d/sub/f").read_text() == "deep"


def _corrupt_second_header(layer: bytes) -> bytes:
    """The layer with the checksum of its second tar header broken (the first entry is 1 block + data)."""
    first = tarfile.TarInfo.frombuf(layer[:512], "utf-8", "surrogateescape")
    offset = 512 + (first.size + 511) // 512 * 512
    header = bytearray(layer[offset : offset + 512])
    header[148:156] = b"0000000\0"
    return layer[:offset] + bytes(header) + layer[offset + 512 :]


def build_plain(*files: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@needs_root
def test_a_bad_header_after_the_first_entry_refuses_the_layer(tmp_path: Path) -> None:
    layer = _corrupt_second_header(build_plain(("a", b"first"), ("b", b"second"), ("c", b"third")))
    with pytest.raises(UnsafeLayerError, match="invalid tar header at byte 1024"):
        unpack(tmp_path, gzip.compress(layer))


@needs_root
def test_data_after_the_end_of_archive_refuses_the_layer(tmp_path: Path) -> None:
    layer = build_plain(("a", b"x")) + b"garbage" + bytes(505)
    with pytest.raises(UnsafeLayerError, match="data after its end-of-archive marker"):
        unpack(tmp_path, layer)


@needs_root
def test_a_missing_end_of_archive_refuses_the_layer(tmp_path: Path) -> None:
    layer = build_plain(("a", b"x"))[:1024]  # one entry, no zero blocks after it
    with pytest.raises(UnsafeLayerError, match="without an end-of-archive marker"):
        unpack(tmp_path, layer)


@needs_root
def test_zero_padding_after_the_end_is_part_of_the_diff_id(tmp_path: Path) -> None:
    layer = build_plain(("a", b"x")) + bytes(1 << 20)
    _, diff_id = unpack(tmp_path, gzip.compress(layer))
    assert diff_id == "sha256:" + hashlib.sha256(layer).hexdigest()


@needs_root
def test_compression_ratio_bound_stops_a_bomb_but_not_a_real_layer(tmp_path: Path) -> None:
    policy = UnpackPolicy(max_ratio=20, ratio_from_bytes=1 << 20)
    bomb = gzip.compress(build_plain(("zeros", bytes(8 << 20))))
    (tmp_path / "bomb").mkdir()
    with pytest.raises(UnsafeLayerError, match=r"20 times its compressed size .*ISOBOX_UNPACK_MAX_RATIO"):
        unpack(tmp_path / "bomb", bomb, policy)
    real = gzip.compress(build_plain(("random", os.urandom(4 << 20)), ("text", b"line of text\n" * 100_000)))
    (tmp_path / "real").mkdir()
    dest, _ = unpack(tmp_path / "real", real, policy)
    assert (dest / "random").stat().st_size == 4 << 20


@needs_root
def test_free_space_reserve(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    policy = UnpackPolicy(reserve_bytes=free - (16 << 20))
    layer = build_plain(("big", os.urandom(40 << 20)))
    with pytest.raises(ImageError, match=r"would leave less than .* ISOBOX_UNPACK_RESERVE"):
        unpack(tmp_path, layer, policy)


def test_unpack_limits_from_the_environment() -> None:
    policy = UnpackPolicy.from_env({"ISOBOX_UNPACK_MAX_RATIO": "50", "ISOBOX_UNPACK_RATIO_FROM": "1g",
                                    "ISOBOX_UNPACK_RESERVE": "256m"})
    assert (policy.max_ratio, policy.ratio_from_bytes, policy.reserve_bytes) == (50, 1 << 30, 256 << 20)
    assert UnpackPolicy.from_env({}) == UnpackPolicy()
    assert UnpackPolicy().stream_limit(2_000_000)[0] == 512 << 20, "a 2 MB layer may not write GiBs"
    assert UnpackPolicy().stream_limit(1 << 30)[0] == 64 * (1 << 30) + (64 << 20), "large layers: the size limit"
    with pytest.raises(InvalidArgumentError, match="ISOBOX_UNPACK_MAX_RATIO"):
        UnpackPolicy.from_env({"ISOBOX_UNPACK_MAX_RATIO": "zero"})
