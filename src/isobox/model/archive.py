"""`docker cp`: what a path inside a workload is (Docker's container path stat), as values (pure)."""

from __future__ import annotations

import stat
from dataclasses import dataclass

# Go's os.FileMode type bits, which Docker's path stat carries (the docker CLI tests them with IsDir()).
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHAR_DEVICE = 1 << 21
GO_STICKY = 1 << 20


@dataclass(frozen=True)
class PathStat:
    name: str  # the last component of the path asked for
    size_bytes: int
    mode: int  # st_mode, as lstat(2) reports it
    mtime: float
    link_target: str = ""  # a symlink's target, as stored

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


def go_file_mode(mode: int) -> int:
    """st_mode as Go's os.FileMode (permission bits plus Go's own type and special bits)."""
    value = stat.S_IMODE(mode) & 0o777
    kinds = ((stat.S_ISDIR, GO_DIR), (stat.S_ISLNK, GO_SYMLINK), (stat.S_ISFIFO, GO_PIPE),
             (stat.S_ISSOCK, GO_SOCKET), (stat.S_ISBLK, GO_DEVICE), (stat.S_ISCHR, GO_DEVICE | GO_CHAR_DEVICE))
    for test, bits in kinds:
        if test(mode):
            value |= bits
    for bit, go_bit in ((stat.S_ISUID, GO_SETUID), (stat.S_ISGID, GO_SETGID), (stat.S_ISVTX, GO_STICKY)):
        if mode & bit:
            value |= go_bit
    return value


def split_target(path: str) -> tuple[str, str]:
    """('/a/b/c') → ('/a/b', 'c'); the root is ('/', '.')."""
    trimmed = path.rstrip("/") or "/"
    if trimmed == "/":
        return "/", "."
    head, _, name = trimmed.rpartition("/")
    return head or "/", name
