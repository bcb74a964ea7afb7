"""A layer blob decompressed (gzip, zstd, or plain tar by its magic bytes) in a thread of its own.

Unpacking is two kinds of work: decompressing and hashing the stream (CPU, in zlib/zstd and OpenSSL,
which release the GIL), and creating files (system calls, which release it too). Run one after the
other they add up; here the decompressor runs ahead in its own thread, a few MiB at most, so the two
overlap on two cores. The thread also hashes what it produces (the diff_id) and enforces the stream
limit, so a decompression bomb stops where it is produced.

gzip is decoded with zlib directly (RFC 1952 members, one after the other, as ``gzip`` accepts), with a
bound on each call's output, instead of through GzipFile's 8 KiB reads.
"""

from __future__ import annotations

import io
import queue
import threading
import zlib
from collections.abc import Iterator
from types import TracebackType
from typing import IO, TYPE_CHECKING

from isobox.errors import UnsafeLayerError

if TYPE_CHECKING:
    from hashlib import _Hash

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_IN_BYTES = 256 * 1024
_OUT_BYTES = 1024 * 1024
_AHEAD = 16  # chunks of at most _OUT_BYTES waiting for the reader
_END = object()


def chunks(raw: IO[bytes]) -> Iterator[bytes]:
    """The decompressed bytes of ``raw``, in chunks of at most 1 MiB."""
    head = raw.read(4)
    if head.startswith(GZIP_MAGIC):
        yield from _gunzip(head, raw)
    elif head.startswith(ZSTD_MAGIC):
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(io.BufferedReader(_Prefixed(head, raw)),
                                                            read_across_frames=True)
        while data := reader.read(_OUT_BYTES):
            yield data
    else:
        yield head
        while data := raw.read(_OUT_BYTES):
            yield data


def _gunzip(head: bytes, raw: IO[bytes]) -> Iterator[bytes]:
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending, fed = head, False
    while True:
        if not pending:
            pending = raw.read(_IN_BYTES)
            if not pending:
                break
        fed = True
        out = decoder.decompress(pending, _OUT_BYTES)
        if decoder.eof:  # a member ended: what follows is the next member
            pending, fed = decoder.unused_data, False
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        else:
            pending = decoder.unconsumed_tail
        if out:
            yield out
    if fed:
        raise EOFError("the gzip stream ends in the middle of a member (truncated)")


class _Prefixed(io.RawIOBase):
    """``raw`` with the few bytes already read from it put back in front (for the zstd reader)."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self.head = head
        self.raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self.head:
            n = min(len(self.head), len(view))
            view[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.raw.read(len(view))
        view[: len(data)] = data
        return len(data)


class Prefetched:
    """A file-like reader of a blob's decompressed bytes, produced ahead by a thread; hashed and bounded."""

    def __init__(self, raw: IO[bytes], limit: int, why: str, label: str) -> None:
        import hashlib

        self.hasher: _Hash = hashlib.sha256()
        self.produced = 0
        self._raw = raw
        self._limit = limit
        self._why = why
        self._label = label
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_AHEAD)
        self._stop = threading.Event()
        self._chunk = b""
        self._offset = 0
        self._ended = False
        self._thread = threading.Thread(target=self._produce, name="isobox-decompress", daemon=True)
        self._thread.start()

    def __enter__(self) -> Prefetched:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _produce(self) -> None:
        try:
            for chunk in chunks(self._raw):
                self.produced += len(chunk)
                if self.produced > self._limit:
                    raise UnsafeLayerError(f"layer {self._label} decompresses to more than {self._limit} bytes: "
                                           f"{self._why} (a decompression bomb?)", op="unpack layer")
                self.hasher.update(chunk)
                if not self._put(chunk):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the reader, which raises it as its own
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(_OUT_BYTES), b""))
        while self._offset >= len(self._chunk):
            if self._ended:
                return b""
            item = self._queue.get()
            if item is _END:
                self._ended = True
                return b""
            if isinstance(item, BaseException):
                self._ended = True
                raise item
            assert isinstance(item, bytes)
            self._chunk, self._offset = item, 0
        data = self._chunk[self._offset : self._offset + size]
        self._offset += len(data)
        return data

    def close(self) -> None:
        """Stop the producer (it may be blocked on a full queue) and wait for it."""
        self._stop.set()
        self._thread.join()
