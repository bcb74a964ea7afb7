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
from collections.abc import Callable, Iterator
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


def _walk(
    root: Path, skip: frozenset[str], prune: Callable[[str], bool] | None = None
) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(archive name, host path, lstat) of every entry, parents before children, sorted for reproducibility.
    ``prune(rel)`` is asked before a directory is read (after its own entry was yielded): True leaves
    its contents out."""
    stack = [""]
    while stack:
        rel = stack.pop()
        if rel and prune is not None and prune(rel):
            continue
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
                tar.addfile(_entry(_whiteout_name(name), info))
                count += 1
                continue
            count += _add(tar, name, path, info, links)
            if stat.S_ISDIR(info.st_mode) and _is_opaque(path):
                tar.addfile(_entry(f"{name}/{OPAQUE_MARKER}", info, regular=True))
                count += 1
    return count


def write_diff(base: Path, new: Path, out: BinaryIO, *, skip: frozenset[str] = frozenset()) -> int:
    """Write what differs from ``base`` in ``new`` (two full trees) as a layer tar to ``out``.

    For a VM's root disk, which has no upper directory: an entry is written when it is new or its
    type, mode, owner, size, mtime or link target changed (rsync's quick check), and a whiteout for
    every entry of ``base`` that ``new`` no longer has. Returns the number of entries."""
    count = 0
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, path, info in _walk(new, skip):
            try:
                old = (base / name).lstat()
            except (FileNotFoundError, NotADirectoryError):
                old = None
            if old is None or _changed(old, info, base / name, path):
                count += _add(tar, name, path, info, links)
        gone: set[str] = set()
        for name, _path, info in _walk(base, skip, prune=gone.__contains__):
            try:
                kept = (new / name).lstat()
            except (FileNotFoundError, NotADirectoryError):
                kept = None
            if kept is None:
                gone.add(name)
                tar.addfile(_entry(_whiteout_name(name), info, regular=True))
                count += 1
            elif stat.S_ISDIR(info.st_mode) and not stat.S_ISDIR(kept.st_mode):
                gone.add(name)  # replaced by what the first pass wrote, which takes its contents with it
    return count


def _changed(old: os.stat_result, new: os.stat_result, old_path: Path, new_path: Path) -> bool:
    if stat.S_IFMT(old.st_mode) != stat.S_IFMT(new.st_mode):
        return True
    if (old.st_mode, old.st_uid, old.st_gid) != (new.st_mode, new.st_uid, new.st_gid):
        return True
    if stat.S_ISLNK(new.st_mode):
        return os.readlink(old_path) != os.readlink(new_path)
    if stat.S_ISDIR(new.st_mode):
        return False  # its entries are compared one by one
    return (old.st_size, old.st_mtime_ns) != (new.st_size, new.st_mtime_ns)


def _whiteout_name(name: str) -> str:
    parent, _, base = name.rpartition("/")
    return f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else f"{WHITEOUT_PREFIX}{base}"


def _add(tar: tarfile.TarFile, name: str, path: Path, info: os.stat_result, links: dict[tuple[int, int], str]) -> int:
    """One file system entry as a tar entry; 0 for what is not image content (sockets, devices)."""
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
    elif stat.S_ISLNK(info.st_mode):
        entry.type, entry.linkname = tarfile.SYMTYPE, os.readlink(path)
        tar.addfile(entry)
    elif stat.S_ISFIFO(info.st_mode):
        entry.type = tarfile.FIFOTYPE
        tar.addfile(entry)
    else:
        return 0
    return 1


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
