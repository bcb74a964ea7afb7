"""Per-object advisory locks (flock), so two isobox processes never drive one workload or image at once.

flock locks die with their process, so a crashed isobox never leaves a lock held.

A lock file may be deleted by its holder (`discard`, when the workload it guards is removed, so run/locks
does not gather one file per workload ever made). A process that waited on the old file then holds a lock
on a file nobody else can find, while a newcomer creates and locks a new one: so after flock, `locked`
checks that its descriptor is still the file at the path (same inode) and, if not, starts again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def _lock_path(lock_dir: Path, key: str) -> Path:
    return lock_dir / f"{key}.lock"


def _still_there(path: Path, fd: int) -> bool:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (found.st_dev, found.st_ino) == (held.st_dev, held.st_ino)


def _acquire(path: Path, shared: bool, wait: bool) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
            if _still_there(path, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder deleted it while we waited: lock the file that is there now


@contextlib.contextmanager
def locked(lock_dir: Path, key: str, *, shared: bool = False, wait: bool = True) -> Iterator[None]:
    """Hold the lock ``key``; with wait=False, raise BlockingIOError at once if another process holds it."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = _acquire(_lock_path(lock_dir, key), shared, wait)
    try:
        yield
    finally:
        os.close(fd)


def discard(lock_dir: Path, key: str) -> None:
    """Delete the lock file ``key`` while this process holds it exclusively (see the module docstring)."""
    _lock_path(lock_dir, key).unlink(missing_ok=True)


def discard_idle(lock_dir: Path, keys: list[str]) -> None:
    """Delete the lock files ``keys`` that nobody holds now (one still held stays: its holder is at work)."""
    for key in keys:
        path = _lock_path(lock_dir, key)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _still_there(path, fd):
                path.unlink(missing_ok=True)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)


def keys_with(lock_dir: Path, fragment: str) -> list[str]:
    """The keys of the lock files whose names contain ``fragment`` (a workload's id)."""
    try:
        return [p.name.removesuffix(".lock") for p in lock_dir.iterdir() if fragment in p.name and p.suffix == ".lock"]
    except FileNotFoundError:
        return []
