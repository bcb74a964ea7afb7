"""`isobox save` to stdout and `isobox load` from stdin, as Docker's: an archive is written or read whole
through a file in isobox's tmp directory, as the tar formats need to seek (a docker-archive's manifest.json
comes last; reading it needs the whole archive)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import BinaryIO

from isobox.errors import ImageError
from isobox.images.store import ImageRecord
from isobox.service import images
from isobox.service.context import Context

CHUNK_BYTES = 1 << 20


def save(ctx: Context, names: list[str], out: BinaryIO, *, fmt: str = "docker") -> None:
    """Write the images' archive to ``out`` (a pipe or file)."""
    ctx.paths.tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ctx.paths.tmp, prefix="save-") as directory:
        path = os.path.join(directory, "images.tar")
        images.save(ctx, names, path, fmt=fmt)
        try:
            with open(path, "rb") as archive:
                shutil.copyfileobj(archive, out, CHUNK_BYTES)
            out.flush()
        except OSError as exc:
            raise ImageError(f"cannot write the archive to the output: {exc.strerror}", op="save") from exc


def load(ctx: Context, source: BinaryIO) -> list[ImageRecord]:
    """Load every image of the archive read from ``source``."""
    ctx.paths.tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ctx.paths.tmp, prefix="load-") as directory:
        path = os.path.join(directory, "images.tar")
        try:
            with open(path, "wb") as spool:
                shutil.copyfileobj(source, spool, CHUNK_BYTES)
        except OSError as exc:
            raise ImageError(f"cannot read the archive from the input: {exc.strerror}", op="load") from exc
        return images.load(ctx, path)
