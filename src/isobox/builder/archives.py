"""Tar archives a build reads: the build context sent as a tar (``isobox build -``, ``POST /build``) and the
local archives ``ADD`` extracts. Both are hostile input: they are applied by the image store's hardened
layer unpacker (images/unpack.py: no ``..``, no write through a symbolic link, no hard link out, no device),
after bzip2 or xz, which it does not read, are decompressed here.

An archive is recognised by its content, as Docker does: a tar header (plain, or inside gzip, bzip2, xz
or zstd compression); anything else is not an archive (ADD copies such a file as it is).
"""

from __future__ import annotations

import bz2
import lzma
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from isobox.errors import ImageError, InvalidArgumentError
from isobox.images.layer_limits import UnpackPolicy
from isobox.images.unpack import UnpackResult, unpack_layer

__all__ = ["ArchiveKind", "archive_kind", "extract"]

ArchiveKind = str  # "tar", "gzip", "bzip2", "xz" or "zstd"
_MAGICS = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
_HEAD_BYTES = 64 * 1024


def _decompressed_head(kind: str, head: bytes) -> bytes:
    try:
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 1024)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(head, 1024)
        if kind == "xz":
            return lzma.LZMADecompressor().decompress(head, 1024)
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(head)[:1024]
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return b""
    except Exception:  # zstandard.ZstdError
        return b""


def _is_tar_header(block: bytes) -> bool:
    if len(block) < tarfile.BLOCKSIZE:
        return False
    block = block[:tarfile.BLOCKSIZE]
    if block[257:262] == b"ustar":
        return True
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")  # checks the header's checksum
    except tarfile.HeaderError:
        return False
    return True


def archive_kind(path: Path) -> ArchiveKind | None:
    """What kind of tar archive ``path`` is, or None when it is none (by content, not by name)."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    for magic, kind in _MAGICS:
        if head.startswith(magic):
            return kind if _is_tar_header(_decompressed_head(kind, head)) else None
    return "tar" if _is_tar_header(head) else None


def _plain(path: Path, kind: str, scratch: Path) -> Path:
    """An archive that the layer unpacker reads (plain, gzip, zstd) as it is; bzip2 and xz decompressed."""
    if kind not in ("bzip2", "xz"):
        return path
    opener = bz2.open if kind == "bzip2" else lzma.open
    fd, name = tempfile.mkstemp(dir=scratch, prefix="archive-", suffix=".tar")
    with open(fd, "wb") as out, opener(path, "rb") as source:
        shutil.copyfileobj(source, out, 1024 * 1024)
    return Path(name)


def extract(path: Path, dest: Path, *, scratch: Path, policy: UnpackPolicy, what: str) -> UnpackResult:
    """Extract the archive ``path`` into the empty directory ``dest`` (InvalidArgumentError if it is none)."""
    kind = archive_kind(path)
    if kind is None:
        raise InvalidArgumentError(f"{what} is not a tar archive", op="extract archive", path=str(path))
    plain = _plain(path, kind, scratch)
    try:
        return unpack_layer(plain, dest, policy=policy, what=what)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise ImageError(f"{what} could not be read: {exc}", op="extract archive", path=str(path)) from exc
    finally:
        if plain != path:
            plain.unlink(missing_ok=True)
