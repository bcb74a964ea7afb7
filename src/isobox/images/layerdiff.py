"""An overlayfs upper directory → an OCI layer tarball (image-spec layer.md "Representing Changes").

The inverse of unpack.py: overlay whiteouts (0/0 character devices) become `.wh.NAME` entries and
opaque directories (trusted.overlay.opaque=y) get a `.wh..wh..opq` entry. Hard links inside the upper
dir stay hard links; nothing outside the directory is read (no symlink is followed).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from isobox.images.unpack import OPAQUE_MARKER, WHITEOUT_PREFIX

_KEPT_XATTRS = ("security.capability", "user.")


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _walk(root: Path, skip: frozenset[str]) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(archive name, host path, lstat) of every entry, parents before children, sorted for reproducibility."""
    stack = [""]
    while stack:
        rel = stack.pop()
        directory = root / rel if rel else root
        for name in sorted(os.listdir(directory), reverse=True):
            entry_rel = f"{rel}/{name}" if rel else name
            if "/" + entry_rel in skip:
                continue
            path = directory / name
            info = path.lstat()
            yield entry_rel, path, info
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry_rel)


def write_layer(upper: Path, out: BinaryIO, *, skip: frozenset[str] = frozenset()) -> int:
    """Write the changes in ``upper`` as an uncompressed tar to ``out``; returns the number of entries.

    ``skip`` lists absolute in-container paths that are mount points (their upper-dir entries are only
    placeholders the runtime mounted over, e.g. /etc/hosts), left out as Docker leaves them out.
    """
    count = 0
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, path, info in _walk(upper, skip):
            if _is_whiteout(info):
                parent, _, base = name.rpartition("/")
                tar.addfile(_entry(f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else f"{WHITEOUT_PREFIX}{base}", info))
                count += 1
                continue
            entry = _entry(name, info)
            entry.pax_headers = _xattrs(path)
            key = (info.st_dev, info.st_ino)
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1 and key in links:
                entry.type, entry.linkname, entry.size = tarfile.LNKTYPE, links[key], 0
                tar.addfile(entry)
            elif stat.S_ISREG(info.st_mode):
                links.setdefault(key, name)
                entry.size = info.st_size
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                with os.fdopen(fd, "rb") as data:
                    tar.addfile(entry, data)
            elif stat.S_ISDIR(info.st_mode):
                entry.type = tarfile.DIRTYPE
                tar.addfile(entry)
                if _is_opaque(path):
                    tar.addfile(_entry(f"{name}/{OPAQUE_MARKER}", info, regular=True))
                    count += 1
            elif stat.S_ISLNK(info.st_mode):
                entry.type, entry.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(entry)
            elif stat.S_ISFIFO(info.st_mode):
                entry.type = tarfile.FIFOTYPE
                tar.addfile(entry)
            else:
                continue  # sockets and device nodes are not image content
            count += 1
    return count


def _entry(name: str, info: os.stat_result, *, regular: bool = False) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.mode = 0o644 if regular else stat.S_IMODE(info.st_mode)
    entry.uid, entry.gid = info.st_uid, info.st_gid
    entry.mtime = int(info.st_mtime)
    entry.type = tarfile.REGTYPE
    return entry


def _xattrs(path: Path) -> dict[str, str]:
    headers: dict[str, str] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return headers
    for key in names:
        if key.startswith(_KEPT_XATTRS):
            value = os.getxattr(path, key, follow_symlinks=False)
            headers[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
    return headers


def layer_bytes(upper: Path, *, skip: frozenset[str] = frozenset()) -> bytes:
    buffer = io.BytesIO()
    write_layer(upper, buffer, skip=skip)
    return buffer.getvalue()
