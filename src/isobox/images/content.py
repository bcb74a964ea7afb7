"""Content-addressed blobs (blobs/sha256/<hex>), shared by every image.

Writes are crash-safe: data goes to a temporary file in the same filesystem, is verified against its
digest while streaming, fsync'ed, then renamed into place. A reader never sees a partial blob.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from isobox.errors import DigestMismatchError, ImageError, InvalidArgumentError

CHUNK = 1 << 20


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def split_digest(digest: str) -> tuple[str, str]:
    algorithm, _, hexpart = digest.partition(":")
    if algorithm not in ("sha256", "sha512") or not hexpart or not all(c in "0123456789abcdef" for c in hexpart):
        raise InvalidArgumentError(f"invalid digest {digest!r}", op="parse digest")
    return algorithm, hexpart


class BlobStore:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp

    def path(self, digest: str) -> Path:
        algorithm, hexpart = split_digest(digest)
        return self.root / algorithm / hexpart

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str, *, max_bytes: int | None = None) -> bytes:
        path = self.path(digest)
        try:
            size = path.stat().st_size
            if max_bytes is not None and size > max_bytes:
                raise ImageError(f"blob {digest} is {size} bytes, more than {max_bytes}", op="read blob")
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ImageError(f"blob {digest} is not in the store", op="read blob", path=str(path)) from exc

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        return self.put_stream([data], expected or sha256_digest(data), expected_size=len(data))

    def put_stream(
        self,
        chunks: Iterable[bytes],
        expected: str,
        *,
        expected_size: int | None = None,
        what: str = "",
    ) -> str:
        """Store a stream whose digest must equal ``expected``; nothing is stored if it does not."""
        algorithm, hexpart = split_digest(expected)
        final = self.path(expected)
        if final.is_file():
            for _ in chunks:  # drain so callers' streams are closed consistently
                pass
            return expected
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.new(algorithm)
        size = 0
        fd, tmpname = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if expected_size is not None and size > expected_size:
                        raise DigestMismatchError(
                            f"blob {expected}{what} is larger than its declared {expected_size} bytes",
                            op="store blob",
                        )
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if expected_size is not None and size != expected_size:
                raise DigestMismatchError(
                    f"blob {expected}{what} is truncated: {size} of {expected_size} bytes", op="store blob"
                )
            if hasher.hexdigest() != hexpart:
                raise DigestMismatchError(
                    f"blob{what} has digest {algorithm}:{hasher.hexdigest()}, expected {expected}", op="store blob"
                )
            os.replace(tmpname, final)
            _fsync_dir(final.parent)
        except BaseException:
            Path(tmpname).unlink(missing_ok=True)
            raise
        return expected

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def all_digests(self) -> list[str]:
        found = []
        for algorithm_dir in self.root.glob("*"):
            found.extend(f"{algorithm_dir.name}:{p.name}" for p in algorithm_dir.iterdir())
        return found


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
