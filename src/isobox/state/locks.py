"""Per-object advisory locks (flock), so two isobox processes never drive one workload or image at once.

flock locks die with their process, so a crashed isobox never leaves a lock held.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(lock_dir: Path, key: str, *, shared: bool = False, wait: bool = True) -> Iterator[None]:
    """Hold the lock ``key``; with wait=False, raise BlockingIOError at once if another process holds it."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        yield
    finally:
        os.close(fd)
