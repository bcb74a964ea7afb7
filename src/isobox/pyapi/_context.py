"""One Context per call of the Python API, closed when the call returns."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from isobox.service.context import Context, open_context

Root = str | os.PathLike[str] | None


@contextmanager
def context(root: Root) -> Iterator[Context]:
    """The state of ``root`` (None: ISOBOX_ROOT, or the system's default), open for one call."""
    ctx = open_context(root)
    try:
        yield ctx
    finally:
        ctx.close()
