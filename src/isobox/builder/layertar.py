"""Writing the layer tars of a build: what COPY and ADD produce, and a RUN's diff made fit for an image.

Both end as an uncompressed tar in a file, with its diff_id (the sha256 of the tar, image-spec config.md)
computed while it is written. With SOURCE_DATE_EPOCH every time in the tar is clamped to it (as BuildKit's
``rewrite-timestamp`` does), so the same inputs give the same layer, byte for byte.

A RUN's diff (``normalize_diff``) loses what belongs to the step's mounts rather than to the image: the
mount points themselves and what is below them, and the directories the runtime had to create (or touch)
only to hold a mount point, so a ``RUN --mount=type=secret`` leaves no ``/run/secrets`` behind.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, BinaryIO

from isobox.errors import ImageError

__all__ = ["OPAQUE_MARKER", "TarSink", "dir_info", "normalize_diff"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_TIME_KEYS = ("mtime", "atime", "ctime")
_CHUNK = 1024 * 1024


class _Hashing:
    """A write-only file that hashes what goes through it (the diff_id) and counts it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


class TarSink:
    """A layer tar being written to ``path``; ``close`` returns its diff_id."""

    def __init__(self, path: Path, *, epoch: int | None) -> None:
        self.path = path
        self.epoch = epoch
        self.entries = 0
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._hashing = _Hashing(self._file)
        self._tar = tarfile.open(  # noqa: SIM115 - closed by close()
            fileobj=self._hashing, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]

    def clamp(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
        if self.epoch is not None and info.mtime > self.epoch:
            info.mtime = self.epoch
        if any(key in info.pax_headers for key in _TIME_KEYS):
            info.pax_headers = {key: value for key, value in info.pax_headers.items() if key not in _TIME_KEYS}
        info.uname = info.gname = ""
        return info

    def add(self, info: tarfile.TarInfo, data: IO[bytes] | None = None) -> None:
        self._tar.addfile(self.clamp(info), data)
        self.entries += 1

    def add_file(self, info: tarfile.TarInfo, host: Path) -> None:
        """A regular file's entry with the data of ``host`` (opened without following a symbolic link)."""
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as data:
            info.size = os.fstat(fd).st_size
            self.add(info, data)

    def close(self) -> str:
        self._tar.close()
        self._file.close()
        return "sha256:" + self._hashing.hasher.hexdigest()

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def dir_info(name: str, mode: int, uid: int, gid: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
    return info


def _target(name: str) -> str:
    """The path an entry is about: a whiteout's is the name it hides."""
    parent, _, base = name.rstrip("/").rpartition("/")
    if base.startswith(WHITEOUT_PREFIX) and base != OPAQUE_MARKER:
        base = base[len(WHITEOUT_PREFIX):]
        return f"{parent}/{base}" if parent else base
    return name.rstrip("/")


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


def _dropped_dirs(names: list[tuple[str, tarfile.TarInfo]], mounts: frozenset[str],
                  holders: Mapping[str, tuple[int, int, int] | None]) -> set[str]:
    """The holders of mount points to leave out: those the image did not have (None) or that kept their mode
    and owner, when nothing else of the diff is below them."""
    dropped: set[str] = set()
    for holder, before in sorted(holders.items(), key=lambda item: -item[0].count("/")):
        kept_below = [name for name, _info in names if name != holder and name.startswith(holder + "/")
                      and not _under(_target(name), mounts) and name not in dropped]
        if kept_below:
            continue
        info = next((info for name, info in names if name == holder), None)
        if info is None:
            continue
        if before is None or before == (stat.S_IMODE(info.mode), info.uid, info.gid):
            dropped.add(holder)
    return dropped


def normalize_diff(source: Path, sink: TarSink, *, mounts: frozenset[str],
                   holders: Mapping[str, tuple[int, int, int] | None]) -> None:
    """Copy the diff ``source`` into ``sink``, without the mount points (``mounts``, relative paths) and what
    is below them, nor the directories in ``holders`` (relative path → mode, uid and gid the image had, None
    when it had none) that only hold them."""
    try:
        with tarfile.open(source, mode="r:") as archive:
            names = [(member.name.rstrip("/").removeprefix("./"), member) for member in archive.getmembers()]
            dropped = _dropped_dirs(names, mounts, holders)
            for name, member in names:
                if _under(_target(name), mounts) or name in dropped:
                    continue
                data = archive.extractfile(member) if member.isreg() else None
                sink.add(member, data)
    except tarfile.TarError as exc:
        raise ImageError(f"the step's changes are not a readable tar: {exc}", op="build",
                                   path=str(source)) from exc
