"""Removing a directory tree that an image layer or a workload wrote: any depth, any modes, no symlink followed.

shutil.rmtree recurses once per level and holds a descriptor per level, so a tree a few thousand levels
deep (a layer can carry one; a container can make one) ends in RecursionError or EMFILE, and paths past
PATH_MAX fail by name; with ``ignore_errors`` the tree then silently stays. Directories a layer made
unreadable (mode 000) stop it too when isobox is not root.

``remove_tree`` walks with one directory descriptor at a time: it descends with openat(O_NOFOLLOW),
climbs back with openat(".."), and checks that ".." is the directory it came from (device and inode),
so a directory moved meanwhile cannot redirect it. Symlinks are unlinked, never followed. It does not
cross into another file system (a mount left under the tree): that is an error, not a deletion of the
mounted file system's contents.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class _Level:
    name: str  # its name in the level above
    dev: int
    ino: int
    subdirs: list[str] = field(default_factory=list)  # still to remove


def remove_tree(path: str | os.PathLike[str], *, missing_ok: bool = True) -> None:
    """Remove ``path`` and everything under it; raises OSError (with the path) if something stays."""
    path = Path(path)
    parent_fd = os.open(path.parent, _DIR_FLAGS & ~os.O_NOFOLLOW)
    try:
        try:
            info = os.stat(path.name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            if missing_ok:
                return
            raise
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(path.name, dir_fd=parent_fd)
            return
        _remove_dir(parent_fd, path.name, info.st_dev, path)
    finally:
        os.close(parent_fd)


def discard_tree(path: str | os.PathLike[str]) -> bool:
    """remove_tree for clean-up that must go on: a failure is logged (naming the path), not raised."""
    try:
        remove_tree(path)
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc)
        return False
    return True


def remove_tree_at(dir_fd: int, name: str) -> None:
    """Remove the directory ``name`` in the directory ``dir_fd`` and everything under it."""
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    _remove_dir(dir_fd, name, info.st_dev, Path(f"/proc/self/fd/{dir_fd}", name))


def _open_dir(parent_fd: int, name: str) -> int:
    """openat(O_NOFOLLOW|O_DIRECTORY), making the directory searchable first if its mode forbids it."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        _make_accessible(parent_fd, name)
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


def _make_accessible(parent_fd: int, name: str) -> None:
    # O_PATH needs no permission on the directory itself; chmod through /proc/self/fd acts on that very
    # inode (Linux has no fchmodat(AT_SYMLINK_NOFOLLOW), and O_PATH descriptors refuse fchmod).
    fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        os.chmod(f"/proc/self/fd/{fd}", mode | stat.S_IRWXU)
    finally:
        os.close(fd)


def _empty_files(fd: int, dev: int, where: Callable[[], Path]) -> list[str]:
    """Unlink everything but subdirectories in the directory ``fd``; return the subdirectories' names."""
    info = os.fstat(fd)
    if os.geteuid() != 0 and stat.S_IMODE(info.st_mode) & stat.S_IRWXU != stat.S_IRWXU:
        os.fchmod(fd, stat.S_IMODE(info.st_mode) | stat.S_IRWXU)
    subdirs = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.stat(follow_symlinks=False).st_dev != dev:
                    raise OSError(errno.EXDEV, "a mount point is in the way", str(where() / entry.name))
                subdirs.append(entry.name)
            else:
                try:
                    os.unlink(entry.name, dir_fd=fd)
                except FileNotFoundError:
                    pass
    return subdirs


def _remove_dir(top_parent: int, top_name: str, dev: int, top_path: Path) -> None:
    fd = _open_dir(top_parent, top_name)
    info = os.fstat(fd)
    levels = [_Level(top_name, info.st_dev, info.st_ino)]
    try:
        def where() -> Path:  # only built for an error message: joining at every level would be quadratic
            return top_path.joinpath(*(level.name for level in levels[1:]))

        levels[0].subdirs = _empty_files(fd, dev, where)
        while True:
            level = levels[-1]
            if level.subdirs:
                name = level.subdirs.pop()
                try:
                    child = _open_dir(fd, name)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    os.unlink(name, dir_fd=fd)  # replaced by a non-directory meanwhile
                    continue
                os.close(fd)
                fd = child
                child_info = os.fstat(fd)
                levels.append(_Level(name, child_info.st_dev, child_info.st_ino))
                levels[-1].subdirs = _empty_files(fd, dev, where)
                continue
            if len(levels) == 1:
                break
            up = os.open("..", _DIR_FLAGS, dir_fd=fd)
            up_info = os.fstat(up)
            above = levels[-2]
            if (up_info.st_dev, up_info.st_ino) != (above.dev, above.ino):
                os.close(up)
                raise OSError(errno.ESTALE, "a directory was moved while its tree was being removed", str(top_path))
            os.close(fd)
            fd = up
            os.rmdir(level.name, dir_fd=fd)
            levels.pop()
    finally:
        os.close(fd)
    os.rmdir(top_name, dir_fd=top_parent)
