"""Bodies produced over time: JSON progress streams (pull, push, load) and Docker's multiplexed frames.

A progress stream is one JSON object per line, as the docker CLI's jsonmessage and docker-py's
``stream=True`` parse them: ``{"status": …, "id": …, "progressDetail": {…}}`` per step, and a failure
after the 200 has gone out as ``{"error": …, "errorDetail": {"message": …}}`` (the status line can no
longer say it). The multiplexed stream frames each piece of output with 8 bytes: the stream (1 stdout,
2 stderr), three zero bytes, and the length as a big-endian uint32 (Docker's stdcopy).
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

from isobox.api import errors

log = logging.getLogger(__name__)

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW_STREAM = "application/vnd.docker.raw-stream"
STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}


def line(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode() + b"\r\n"


def error_line(exc: BaseException, operation: str) -> bytes:
    message = errors.message_for(exc, operation)
    return line({"error": message, "errorDetail": {"message": message}})


def frame(stream: str, data: bytes) -> bytes:
    """One frame of a multiplexed stream (stdcopy's header, then the bytes)."""
    return struct.pack(">BxxxI", STREAM_IDS[stream], len(data)) + data


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The frames of a multiplexed stream (for tests and for clients of isobox's own)."""
    frames: list[tuple[int, bytes]] = []
    offset = 0
    while offset + 8 <= len(data):
        stream, size = struct.unpack(">BxxxI", data[offset:offset + 8])
        frames.append((stream, data[offset + 8:offset + 8 + size]))
        offset += 8 + size
    return frames


async def progress(events: AsyncIterator[dict[str, Any]], operation: str,
                   final: Callable[[], list[dict[str, Any]]] | None = None) -> AsyncIterator[bytes]:
    """A JSON progress stream of ``events``; an error ends it with an error line (the status went out as
    200 already). ``final`` adds the closing lines once the events ended well."""
    try:
        async for event in events:
            yield line(event)
        for document in final() if final is not None else []:
            yield line(document)
    except Exception as exc:
        log.debug("%s failed inside its stream: %s", operation, exc)
        yield error_line(exc, operation)
