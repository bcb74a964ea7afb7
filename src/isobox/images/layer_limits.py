"""How much a layer may write: the unpack policy, and the reader that enforces its stream-wide limits.

Three limits catch a decompression bomb or a layer that would fill the disk, without refusing real
layers (each configurable through the environment of the isobox process):

- **Size**: at most ``max_bytes`` (64 GiB) of file data in one layer, and as many tar bytes plus 64 MiB
  of headers.
- **Compression ratio** (``ISOBOX_UNPACK_MAX_RATIO``, default 100; ``ISOBOX_UNPACK_RATIO_FROM``, default
  512m): past the first 512 MiB, a layer may not decompress to more than 100 times its compressed size.
  Real layers compress 2-10:1 (binaries and libraries 2-4:1, text up to ~10:1), zeros about 1000:1
  with gzip and far more with zstd; a 2 MB gzip of zeros would otherwise write 2 GiB. The 512 MiB
  floor lets a small layer holding, say, a zero-filled file of a few hundred MiB through.
- **Free space** (``ISOBOX_UNPACK_RESERVE``, default 5% of the store's file system, at most 1 GiB): the
  unpack stops before the free space of the file system under the store would drop below the reserve,
  so a large but legal layer fails with a clear error instead of leaving the host without space.

Sizes take binary suffixes (512m, 1g) as Docker's flags do. A limit that is hit raises an error naming
the layer, the limit and the variable that sets it; the store then removes the half-written layer.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, replace
from typing import IO

from isobox.errors import ImageError, InvalidArgumentError
from isobox.model.spec import parse_size

RATIO_ENV = "ISOBOX_UNPACK_MAX_RATIO"
RATIO_FROM_ENV = "ISOBOX_UNPACK_RATIO_FROM"
RESERVE_ENV = "ISOBOX_UNPACK_RESERVE"
# Tar headers, padding and the end-of-archive blocks on top of the files' own bytes.
STREAM_OVERHEAD = 64 * 1024 * 1024
_RESERVE_SHARE = 0.05
_RESERVE_CAP = 1024**3
# How much data may be written between two looks at the free space (one statvfs each).
_SPACE_CHECK_BYTES = 32 * 1024 * 1024
# The tail of the tar stream kept for the end-of-archive check: tarfile reads ahead at most one
# record (10 KiB) beyond the header it failed to parse.
_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class UnpackPolicy:
    max_bytes: int = 64 * 1024**3       # file data of one layer
    max_entries: int = 2_000_000
    allow_devices: bool = False
    max_ratio: int = 100                # uncompressed : compressed, once past ratio_from_bytes
    ratio_from_bytes: int = 512 * 1024**2
    reserve_bytes: int | None = None    # free space to leave on the store's file system; None: 5%, ≤ 1 GiB

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> UnpackPolicy:
        env = os.environ if environ is None else environ
        policy = cls()
        ratio = env.get(RATIO_ENV, "").strip()
        if ratio:
            if not ratio.isdigit() or int(ratio) < 1:
                raise InvalidArgumentError(f"{RATIO_ENV}={ratio!r} is not a whole number of at least 1",
                                           op="read unpack limits")
            policy = replace(policy, max_ratio=int(ratio))
        floor = env.get(RATIO_FROM_ENV, "").strip()
        if floor:
            policy = replace(policy, ratio_from_bytes=parse_size(floor, what=RATIO_FROM_ENV))
        reserve = env.get(RESERVE_ENV, "").strip()
        if reserve:
            policy = replace(policy, reserve_bytes=parse_size(reserve, what=RESERVE_ENV))
        return policy

    def stream_limit(self, compressed_bytes: int) -> tuple[int, str]:
        """The most tar bytes a layer of ``compressed_bytes`` may decompress to, and which limit that is."""
        by_size = self.max_bytes + STREAM_OVERHEAD
        by_ratio = max(self.ratio_from_bytes, self.max_ratio * compressed_bytes)
        if by_ratio < by_size:
            return by_ratio, (f"{self.max_ratio} times its compressed size of {compressed_bytes} bytes "
                              f"({RATIO_ENV}, counted past {self.ratio_from_bytes} bytes: {RATIO_FROM_ENV})")
        return by_size, "the limit of a layer's size"


class TailReader:
    """Counts what the tar reader consumed and keeps its last bytes, for the end-of-archive check."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.total = 0
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if data:
            self.total += len(data)
            self._tail.append(data)
            self._tail_bytes += len(data)
            while self._tail_bytes - len(self._tail[0]) >= _TAIL_BYTES:
                self._tail_bytes -= len(self._tail.popleft())
        return data

    def since(self, offset: int) -> bytes | None:
        """The bytes read from ``offset`` on, or None if they are no longer kept."""
        start = self.total - self._tail_bytes
        if offset < start:
            return None
        return b"".join(self._tail)[offset - start :]


class SpaceGuard:
    """Refuses to write past the free-space reserve of the file system holding ``path``."""

    def __init__(self, path: str, reserve_bytes: int | None, label: str) -> None:
        self.path = path
        self.label = label
        info = os.statvfs(path)
        size = info.f_blocks * info.f_frsize
        self.reserve = reserve_bytes if reserve_bytes is not None else min(_RESERVE_CAP, int(size * _RESERVE_SHARE))
        self.unchecked = 0
        self.check(0)

    def check(self, upcoming: int) -> None:
        info = os.statvfs(self.path)
        free = info.f_bavail * info.f_frsize
        self.unchecked = 0
        if free - upcoming < self.reserve:
            raise ImageError(f"unpacking layer {self.label} would leave less than {self.reserve} bytes free on the "
                             f"file system of the store ({free} free, {upcoming} more to write; {RESERVE_ENV} "
                             "sets the reserve)", op="unpack layer", path=self.path)

    def will_write(self, size: int) -> None:
        """Called before writing ``size`` bytes: looks at the file system every 32 MiB or for a big file."""
        self.unchecked += size
        if self.unchecked >= _SPACE_CHECK_BYTES:
            self.check(size)
