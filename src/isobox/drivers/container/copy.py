"""`docker cp` for containers: tar streams out of and into the container's root file system, through the host's
view of it (the overlay mount and the volumes and bind mounts over it), running or not.

Every path is resolved as inside the container (storage/rootfs.resolve_in_root with the container's mounts):
a symlink the image or the container made is followed inside the container, never out of it. What is
archived is never followed (a symlink goes into the tar as a symlink); what is unpacked replaces a symlink
it would land on instead of writing through it, and each member's parent is resolved in-root again, so a
member cannot climb out through a link an earlier member made. Owners are the container's: with
--userns=auto, host ids are shifted by the workload's range both ways.
"""

from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from isobox.drivers.container import bundle
from isobox.errors import InvalidArgumentError, NotFoundError, UnsafeLayerError, WorkloadError
from isobox.model.archive import PathStat, split_target
from isobox.model.mounts import MountKind
from isobox.model.plan import USERNS_SIZE, RunPlan
from isobox.storage import rootfs as rootfs_access

OP_FROM = "copy from container"
OP_TO = "copy to container"


def _mounts(plan: RunPlan) -> dict[str, Path]:
    return {m.target: Path(m.source) for m in plan.mounts
            if m.kind in (MountKind.VOLUME, MountKind.BIND) and m.source and not m.disk and Path(m.source).is_dir()}


@dataclass(frozen=True)
class _View:
    """The container's file system as the host reaches it: its root and the directories mounted over it."""

    root: Path
    mounts: dict[str, Path]

    @classmethod
    def of(cls, plan: RunPlan) -> _View:
        bundle.mount_rootfs(plan)
        return cls(bundle.rootfs_dir(plan), _mounts(plan))

    def resolve(self, path: str, *, follow_last: bool) -> Path:
        """The host path of ``path`` as the container sees it; the last component followed only if asked."""
        if follow_last:
            return rootfs_access.resolve_in_root(self.root, path, self.mounts)
        head, name = split_target(path)
        parent = rootfs_access.resolve_in_root(self.root, head, self.mounts)
        if name == ".":
            return parent
        return self.mounts.get(_inner(head, name), parent / name)


def _resolve(plan: RunPlan, path: str, *, follow_last: bool) -> Path:
    return _View.of(plan).resolve(path, follow_last=follow_last)


def _inner(head: str, name: str) -> str:
    return (head.rstrip("/") + "/" + name) if name != "." else head


def stat_path(plan: RunPlan, path: str) -> PathStat:
    host = _resolve(plan, path, follow_last=False)
    try:
        info = host.lstat()
    except (FileNotFoundError, NotADirectoryError):
        raise NotFoundError(f"Could not find the file {path} in container {plan.name}", op=OP_FROM,
                            id=path, path=path) from None
    target = os.readlink(host) if stat.S_ISLNK(info.st_mode) else ""
    return PathStat(split_target(path)[1] if path.rstrip("/") else "/", info.st_size, info.st_mode, info.st_mtime,
                    target)


def _shift(plan: RunPlan, uid: int, down: bool) -> int:
    base = plan.userns_base
    if base is None:
        return uid
    if down:
        return uid - base if base <= uid < base + USERNS_SIZE else 65534  # outside the range: nobody
    return uid + base


def copy_from(plan: RunPlan, path: str, out: BinaryIO) -> PathStat:
    """``path`` as a tar stream named by its last component (a trailing "/." names the content)."""
    info = stat_path(plan, path)
    host = _resolve(plan, path, follow_last=False)
    name = split_target(path)[1]
    arcname = "." if name == "." or not path.rstrip("/") else name

    def owners(member: tarfile.TarInfo) -> tarfile.TarInfo:
        member.uid, member.gid = _shift(plan, member.uid, True), _shift(plan, member.gid, True)
        member.uname = member.gname = ""
        return member

    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            archive.add(str(host), arcname=arcname, recursive=True, filter=owners)
    except OSError as exc:
        raise WorkloadError(f"cannot read {path}: {exc.strerror or exc}", op=OP_FROM, id=plan.name,
                            path=path) from exc
    return info


def copy_to(plan: RunPlan, directory: str, tar: BinaryIO) -> None:
    """Unpack ``tar`` into ``directory`` (which must exist and be a directory inside the container)."""
    if plan.security.read_only:
        raise InvalidArgumentError(f"container {plan.name} has a read-only root file system", op=OP_TO, id=plan.name)
    view = _View.of(plan)
    target = view.resolve(directory, follow_last=True)
    if not target.is_dir() or target.is_symlink():
        raise NotFoundError(f"Could not find the directory {directory} in container {plan.name}", op=OP_TO,
                            id=directory, path=directory)
    try:
        with tarfile.open(fileobj=tar, mode="r|*") as archive:
            for member in archive:
                _extract(plan, view, directory, member, archive)
    except tarfile.TarError as exc:
        raise InvalidArgumentError(f"the archive is not a valid tar stream: {exc}", op=OP_TO, id=plan.name) from exc
    except OSError as exc:
        raise WorkloadError(f"cannot write into {directory}: {exc.strerror or exc}", op=OP_TO, id=plan.name,
                            path=directory) from exc


def _member_path(directory: str, name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerError(f"archive member {name!r} climbs out of its directory", op=OP_TO, path=name)
    return "/".join([directory.rstrip("/"), *parts]) or "/"


def _extract(plan: RunPlan, view: _View, directory: str, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
    inner = _member_path(directory, member.name)
    if inner.rstrip("/") == directory.rstrip("/"):
        return  # the directory itself ("./"): it exists already
    _make_parents(plan, view, directory, inner)
    host = view.resolve(inner, follow_last=False)  # the parent resolved in-root, the entry itself not
    uid, gid = _shift(plan, member.uid, False), _shift(plan, member.gid, False)
    existing = _lstat(host)
    if member.isdir():
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            host.unlink()
            existing = None
        if existing is None:
            host.mkdir(mode=0o700)
    else:
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise InvalidArgumentError(f"cannot overwrite directory {inner} with a non-directory", op=OP_TO,
                                       id=plan.name, path=inner)
        if existing is not None:
            host.unlink()  # a symlink there is replaced, never written through
        if member.issym():
            os.symlink(member.linkname, host)
        elif member.islnk():
            source = view.resolve(_member_path(directory, member.linkname), follow_last=False)
            os.link(source, host, follow_symlinks=False)
        elif member.isfile():
            _write_file(host, archive, member)
        else:
            return  # devices, fifos: not copied into a container (Docker's cp neither makes device nodes)
    os.chown(host, uid, gid, follow_symlinks=False)
    if not member.issym():
        os.chmod(host, member.mode & 0o7777)
        os.utime(host, (member.mtime, member.mtime))


def _make_parents(plan: RunPlan, view: _View, directory: str, inner: str) -> None:
    """Directories a member's path names but the archive did not list first (root's, 0755, as Docker's)."""
    parts = inner[len(directory.rstrip("/")):].strip("/").split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        host = view.resolve("/".join([directory.rstrip("/"), *parts[:depth]]), follow_last=True)
        if _lstat(host) is None:
            host.mkdir(mode=0o755)
            os.chown(host, _shift(plan, 0, False), _shift(plan, 0, False))


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def _write_file(host: Path, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    source = archive.extractfile(member)
    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        if source is not None:
            while chunk := source.read(1 << 20):
                handle.write(chunk)
