"""Safe access to files inside a workload's root filesystem, whose content the image controls.

Paths are resolved as if the rootfs were '/': symlinks are followed by us, lexically, and can never
lead outside it (the same idea as the securejoin library that runc uses). This is how isobox reads
/etc/passwd of an image and prepares mount destinations without letting a hostile image (a symlinked
/etc/passwd → /etc/shadow, /proc → /, a WORKDIR of /proc/self/fd/N) point the host or the runtime
at anything outside the container.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from isobox.errors import InvalidArgumentError, UnsafeLayerError

MAX_SYMLINKS = 40


def _host_path(root: Path, parts: list[str], mounts: Mapping[str, Path] | None) -> Path:
    """Where the in-root path ``parts`` is on the host: under the deepest mount that covers it, else root."""
    if mounts:
        for depth in range(len(parts), 0, -1):
            source = mounts.get("/" + "/".join(parts[:depth]))
            if source is not None:
                return source.joinpath(*parts[depth:])
    return root.joinpath(*parts)


def resolve_in_root(root: Path, path: str, mounts: Mapping[str, Path] | None = None) -> Path:
    """The host path of ``path`` inside ``root``, following symlinks without ever leaving root. ``mounts``
    (an in-root path → the host directory mounted there, e.g. a volume) makes the walk see the workload's
    view: a symlink inside a volume is resolved in the workload's root too."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = _host_path(root, [*resolved, part], mounts)
        try:
            info = candidate.lstat()
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(info.st_mode):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise UnsafeLayerError(f"too many symlinks resolving {path!r}", op="resolve in rootfs", path=str(root))
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return _host_path(root, resolved, mounts)


def read_text_in_root(root: Path, path: str, *, limit: int = 4 * 1024 * 1024) -> str | None:
    """A small text file of the image (e.g. /etc/passwd), or None if absent or not a regular file."""
    host_path = resolve_in_root(root, path)
    try:
        fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, OSError):
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(limit).decode("utf-8", "replace")


def ensure_dir_in_root(root: Path, path: str) -> Path:
    """Make ``path`` a real directory inside root (replacing a symlink or file the image put there)."""
    host_path = resolve_in_root(root, path)
    if host_path == root:
        return root
    parent = host_path.parent
    if parent != root:
        ensure_dir_in_root(root, "/" + str(parent.relative_to(root)))
    try:
        info = host_path.lstat()
        if stat.S_ISDIR(info.st_mode):
            return host_path
        host_path.unlink()
    except FileNotFoundError:
        pass
    host_path.mkdir(mode=0o755)
    return host_path


def ensure_mountpoint(root: Path, destination: str, *, is_dir: bool) -> str:
    """Prepare a mount destination as a real, non-symlink directory or file inside root.

    The parent is resolved in-root; the last component, if the image made it a symlink (or the wrong
    kind of file), is replaced in the workload's own writable layer. The returned in-root path thus
    contains no symlink at all: runc before 1.1.12 / 1.2.8 had advisories (CVE-2023-27561,
    CVE-2025-31133, CVE-2025-52565) where a symlinked destination such as /proc or /dev/null let an
    image redirect a mount or a procfs write onto the host.
    """
    if not destination.startswith("/"):
        raise InvalidArgumentError(f"mount destination {destination!r} is not absolute", op="prepare mounts")
    head, _, name = destination.rstrip("/").rpartition("/")
    if name in ("", ".", ".."):
        raise InvalidArgumentError(f"mount destination {destination!r} names no entry", op="prepare mounts")
    parent = ensure_dir_in_root(root, head or "/")
    leaf = parent / name
    try:
        info = leaf.lstat()
    except FileNotFoundError:
        info = None
    if info is not None:
        right_kind = stat.S_ISDIR(info.st_mode) if is_dir else stat.S_ISREG(info.st_mode)
        if not right_kind:
            if stat.S_ISDIR(info.st_mode):
                raise UnsafeLayerError(
                    f"image has a directory where the file {destination} is mounted",
                    op="prepare mounts",
                    path=str(root),
                )
            leaf.unlink()
            info = None
    if info is None:
        if is_dir:
            leaf.mkdir(mode=0o755)
        else:
            leaf.touch(mode=0o644)
    return "/" + str(leaf.relative_to(root))


def copy_up(source: Path, dest: Path) -> None:
    """Copy an image directory's content into an empty volume, keeping owners, modes and symlinks.

    As Docker does on a volume's first use, so `-v data:/var/lib/app` starts with the image's files.
    Nothing is followed: symlinks are copied as symlinks, special files are skipped.
    """
    for current, dirs, files in os.walk(source, followlinks=False):
        rel = Path(current).relative_to(source)
        target_dir = dest / rel
        for name in dirs:
            src, dst = Path(current) / name, target_dir / name
            info = src.lstat()
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(src), dst)
                os.lchown(dst, info.st_uid, info.st_gid)
                continue
            dst.mkdir(exist_ok=True)
            os.chown(dst, info.st_uid, info.st_gid)
            os.chmod(dst, stat.S_IMODE(info.st_mode))
        for name in files:
            src, dst = Path(current) / name, target_dir / name
            info = src.lstat()
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(info.st_mode):
                shutil.copyfile(src, dst, follow_symlinks=False)
                os.chmod(dst, stat.S_IMODE(info.st_mode))
            else:
                continue
            os.lchown(dst, info.st_uid, info.st_gid)
