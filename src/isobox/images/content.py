"""Content-addressed blobs (blobs/sha256/<hex>), shared by every image.

Writes are crash-safe: data goes to a temporary file in the same filesystem, is verified against its
digest while streaming, fsync'ed, then renamed into place. A reader never sees a partial blob.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from isobox.errors import DigestMismatchError, ImageError, InvalidArgumentError

if TYPE_CHECKING:
    from hashlib import _Hash

CHUNK = 1 << 20
TMP_PREFIX = "blob-"  # a blob being written (put_stream); "partial-" ones are downloads to continue


def sha256_digest(data: bytes) -> str:
    import hashlib  # hashlib loads OpenSSL (~3 ms): only code that hashes pays for it, not every `run`

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
        import hashlib
        import tempfile

        hasher = hashlib.new(algorithm)
        size = 0
        fd, tmpname = tempfile.mkstemp(dir=self.tmp, prefix=TMP_PREFIX)
        # Locked until it is renamed into place: clear_stale_tmp leaves a file in use (the lock is on the
        # open file, so the duplicate keeps it after the writer's own descriptor is closed).
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = os.dup(fd)
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
        finally:
            os.close(held)
        return expected

    def partial_path(self, digest: str) -> Path:
        algorithm, hexpart = split_digest(digest)
        return self.tmp / f"partial-{algorithm}-{hexpart}"

    def put_resumable(
        self,
        open_stream: Callable[[int], contextlib.AbstractContextManager[tuple[int, Iterable[bytes]]]],
        expected: str,
        *,
        expected_size: int,
        what: str = "",
        on_bytes: Callable[[int], None] | None = None,
    ) -> str:
        """Like put_stream, but keeps an interrupted download in tmp/partial-… and continues it next time.

        ``open_stream(offset)`` yields (start, chunks): the source may restart from 0 (start=0) when it
        cannot seek. The partial file is flock'ed, so two processes never append to it at once; the
        second finds the blob complete when it gets the lock. A digest mismatch deletes the partial file.
        """
        algorithm, hexpart = split_digest(expected)
        final = self.path(expected)
        if final.is_file():
            return expected
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        with self._locked_partial(expected) as (fd, partial):
            if final.is_file():  # completed by the holder we waited for: our fresh partial file is empty
                partial.unlink(missing_ok=True)
                return expected
            try:
                hasher, size = _continue(fd, open_stream, algorithm, expected_size, on_bytes or (lambda n: None))
                if size > expected_size:
                    raise DigestMismatchError(
                        f"blob {expected}{what} is larger than its declared {expected_size} bytes", op="store blob"
                    )
                if size != expected_size:
                    # The source ended cleanly but short: it *is* truncated (a broken connection raises
                    # instead, and keeps the partial copy for the next attempt).
                    raise DigestMismatchError(
                        f"blob {expected}{what} is truncated: {size} of {expected_size} bytes", op="store blob"
                    )
                if hasher.hexdigest() != hexpart:
                    raise DigestMismatchError(
                        f"blob{what} has digest {algorithm}:{hasher.hexdigest()}, expected {expected}", op="store blob"
                    )
            except DigestMismatchError:
                partial.unlink(missing_ok=True)
                raise
            os.fsync(fd)
            os.replace(partial, final)
            _fsync_dir(final.parent)
        return expected

    @contextlib.contextmanager
    def _locked_partial(self, digest: str) -> Iterator[tuple[int, Path]]:
        partial = self.partial_path(digest)
        while True:
            fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(partial).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not renamed or deleted by the holder we waited for
                break
            os.close(fd)
        try:
            yield fd, partial
        finally:
            os.close(fd)

    def clear_stale_tmp(self) -> int:
        """Delete what writes that were killed left in tmp: blobs half-written by a load, a commit or a pull,
        and partial downloads. A file still being written is locked by its writer (flock, which dies with
        the process) and stays. Returns how many files went."""
        removed = 0
        for entry in sorted(self.tmp.glob(f"{TMP_PREFIX}*")) + sorted(self.tmp.glob("partial-*")):
            try:
                fd = os.open(entry, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being written right now
            else:
                entry.unlink(missing_ok=True)
                removed += 1
            finally:
                os.close(fd)
        return removed

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def all_digests(self) -> list[str]:
        found: list[str] = []
        for algorithm_dir in self.root.glob("*"):
            found.extend(f"{algorithm_dir.name}:{p.name}" for p in algorithm_dir.iterdir())
        return found


def _continue(
    fd: int,
    open_stream: Callable[[int], contextlib.AbstractContextManager[tuple[int, Iterable[bytes]]]],
    algorithm: str,
    limit: int,
    on_bytes: Callable[[int], None],
) -> tuple[_Hash, int]:
    """Append what the source sends to the partial file ``fd``, hashing all of it; stops past ``limit``."""
    import hashlib

    hasher = hashlib.new(algorithm)
    offset = _hash_prefix(fd, hasher)
    if offset:
        on_bytes(offset)
    with open_stream(offset) as (start, chunks):
        if start != offset:  # the source could not seek and restarted from the beginning
            os.ftruncate(fd, 0)
            hasher = hashlib.new(algorithm)
            on_bytes(-offset)
            offset = 0
        os.lseek(fd, offset, os.SEEK_SET)
        # Buffered, so short writes are retried; closing flushes what arrived even when the source fails.
        with os.fdopen(fd, "wb", closefd=False) as out:
            for chunk in chunks:
                offset += len(chunk)
                if offset > limit:
                    break
                hasher.update(chunk)
                out.write(chunk)
                on_bytes(len(chunk))
    return hasher, offset


def _hash_prefix(fd: int, hasher: _Hash) -> int:
    """Feed what an earlier attempt already wrote into ``hasher``; returns its length."""
    os.lseek(fd, 0, os.SEEK_SET)
    size = 0
    while chunk := os.read(fd, CHUNK):
        hasher.update(chunk)
        size += len(chunk)
    return size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
