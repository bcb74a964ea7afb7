"""Idmapped mounts (open_tree + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount, Linux ≥ 5.12).

Used for user-namespace remapping: the image's layers, owned by host uid 0, are shown to a container
whose root is host uid BASE as if BASE owned them, without copying or chowning a single file.
See mount_setattr(2). The user namespace that carries the mapping comes from a short-lived helper
process (`unshare --user`), whose maps isobox writes as root (user_namespaces(7)).
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(result: int, call: str, path: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{call} {path}: {os.strerror(errno)}", path)
    return result


@contextmanager
def mapped_helper(base: int, size: int, *unshare_flags: str, timeout_s: float = 10.0) -> Iterator[int]:
    """The pid of a helper process in a new user namespace mapping 0..size-1 to base..base+size-1
    (uids and gids), and in the other new namespaces ``unshare_flags`` ask unshare(1) for (one
    unshare(2): they belong to the new user namespace). Only a process outside may write the maps
    (user_namespaces(7)); being root here, it needs neither newuidmap nor setgroups=deny."""
    helper = subprocess.Popen(
        ["unshare", "--user", *unshare_flags, "sleep", "60"], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        ns_path = f"/proc/{helper.pid}/ns/user"
        own = os.readlink("/proc/self/ns/user")
        deadline = time.monotonic() + timeout_s
        while _readlink(ns_path) in (own, None):  # until the helper has entered its own namespace
            if helper.poll() is not None or time.monotonic() > deadline:
                detail = helper.stderr.read().decode(errors="replace").strip() if helper.stderr else ""
                raise OSError(errno.ECHILD, f"unshare did not create a user namespace: {detail or 'timed out'}")
            time.sleep(0.001)
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{helper.pid}/{name}", "w") as handle:
                handle.write(f"0 {base} {size}\n")
        yield helper.pid
    finally:
        helper.kill()
        helper.wait()
        if helper.stderr is not None:
            helper.stderr.close()


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


@contextmanager
def userns(base: int, size: int) -> Iterator[int]:
    """An fd of a user namespace mapping 0..size-1 to base..base+size-1 (uids and gids)."""
    with mapped_helper(base, size) as pid:
        fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)


def idmapped_bind(source: str, target: str, userns_fd: int) -> None:
    """Mount ``source`` at ``target`` with the ids of ``userns_fd``'s mapping."""
    tree = _check(
        _libc.syscall(SYS_OPEN_TREE, AT_FDCWD, source.encode(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC),
        "open_tree",
        source,
    )
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        _check(
            _libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr)),
            "mount_setattr",
            source,
        )
        _check(
            _libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH),
            "move_mount",
            target,
        )
    finally:
        os.close(tree)
