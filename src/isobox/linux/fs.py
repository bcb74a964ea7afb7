"""Facts about file systems (for messages about a full one)."""

from __future__ import annotations

import os
from pathlib import Path


def mount_point(path: str | os.PathLike[str]) -> str:
    """The mount point of the file system holding ``path`` (or its nearest existing parent)."""
    current = Path(path)
    while not current.exists() and current != current.parent:
        current = current.parent
    current = current.resolve()
    while current != current.parent and not os.path.ismount(current):
        current = current.parent
    return str(current)


def is_full(error: OSError) -> bool:
    """Whether an OSError says the file system (or the user's quota on it) is full."""
    import errno

    return error.errno in (errno.ENOSPC, errno.EDQUOT)
