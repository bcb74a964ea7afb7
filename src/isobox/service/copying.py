"""`isobox cp`: files between the host and a container, with Docker's path rules.

Inside the container, every path is resolved in-root (storage/rootfs.resolve_in_root): symlinks the image or
the workload made are followed as the container would see them and never lead out of it. A path under a
volume or bind mount is found in the mount's source (the host's view of the rootfs shows only the overlay);
a tmpfs is only in the container's own mount namespace and is refused. A running container is frozen while
its files are read or written, as Docker does since CVE-2018-15664: no process inside can swap a directory
for a symlink between the resolution of a path and its use.

Everything travels as a tar stream (the `-` forms read and write it as they are): the source becomes a tar of
one top entry, extracted at the destination by Docker's rules (`docker cp` reference, "Extended description"):
a file over a file or into a directory; a directory into an existing directory (as its child), or as the new
directory; `SRC/.` copies a directory's content. Copied files belong to the container's root (or keep their
owners with --archive); on the host they belong to whoever runs isobox.

VMs are refused (UnsupportedError): their files are inside the guest's own file system.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from isobox.errors import InvalidArgumentError, NotFoundError, UnsupportedError, WorkloadError
from isobox.model.mounts import MountKind
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind
from isobox.model.status import Status
from isobox.service import workloads
from isobox.service.context import Context
from isobox.storage.rootfs import resolve_in_root

Resolver = Callable[[str], Path]  # an in-workload path (relative to the copy's destination) → the host's path


@dataclass(frozen=True)
class Owner:
    """Who copied files belong to: a fixed owner (the container's root), or the archive's (shifted by a
    --userns range)."""

    uid: int | None = None
    gid: int | None = None
    shift: int = 0  # with --archive in a remapped container: the host id of the container's 0


# ---- the container side -----------------------------------------------------------------------


@contextlib.contextmanager
def _container_files(ctx: Context, name_or_id: str, op: str) -> Iterator[tuple[WorkloadRecord, Resolver]]:
    """The container's record and a resolver of its paths, with its rootfs mounted and the container frozen."""
    from isobox.drivers.container import bundle

    record = workloads.get(ctx, name_or_id)
    if record.kind is not Kind.CONTAINER:
        raise UnsupportedError(f"{op} is not available for the VM {record.name} yet: its files are in the "
                               "guest's own file system (exec and a shell, or commit and save, reach them)",
                               op=op, id=record.name)
    if record.status in (Status.CREATING, Status.REMOVING):
        raise WorkloadError(f"{record.name} is {record.status.value}", op=op, id=record.name)
    bundle.mount_rootfs(record.plan)
    root = bundle.rootfs_dir(record.plan)
    driver = workloads.driver_for(ctx, record.kind)
    frozen = record.status is Status.RUNNING
    if frozen:
        driver.pause(record)
    try:
        yield record, lambda path: _host_path(record, root, path, op)
    finally:
        if frozen:
            driver.unpause(record)


def _host_path(record: WorkloadRecord, root: Path, path: str, op: str) -> Path:
    resolved = "/" + str(resolve_in_root(root, path).relative_to(root)).removeprefix(".")
    mounts = sorted(record.plan.mounts, key=lambda m: len(m.target), reverse=True)
    for mount in mounts:
        target = mount.target.rstrip("/") or "/"
        if resolved != target and not resolved.startswith(target + "/"):
            continue
        if mount.kind is MountKind.TMPFS:
            raise UnsupportedError(f"{target} is a tmpfs of {record.name}: it exists only inside the container",
                                   op=op, id=record.name, path=path)
        rest = resolved[len(target):]
        source = Path(mount.source)
        return resolve_in_root(source, rest) if source.is_dir() else source
    return root / resolved.lstrip("/")


def _container_owner(record: WorkloadRecord, archive: bool) -> Owner:
    base = record.plan.userns_base or 0
    return Owner(shift=base) if archive else Owner(uid=base, gid=base)


# ---- making a tar of a source -----------------------------------------------------------------


def _split_source(path: str) -> tuple[str, bool]:
    """(the path, whether only its content is wanted: SRC/. )."""
    contents = path.endswith("/.") or path == "."
    return (path[:-2] or "/") if path.endswith("/.") else path, contents


def _write_tree(tar: tarfile.TarFile, source: Path, top: str, *, contents: bool, follow_link: bool) -> None:
    """``source`` (a host path) as entries under ``top`` (or, with ``contents``, its entries at the top)."""
    info = os.stat(source) if follow_link else os.lstat(source)
    if contents and not stat.S_ISDIR(info.st_mode):
        raise InvalidArgumentError(f"{source.name}/. names the content of a directory, and it is no directory",
                                   op="cp")
    if not contents:
        tar.add(str(source.resolve() if follow_link else source), arcname=top, recursive=False)
    if not stat.S_ISDIR(info.st_mode):
        return
    base = source.resolve() if follow_link else source
    for current, dirs, files in os.walk(base, followlinks=False):
        dirs.sort()
        relative = os.path.relpath(current, base)
        for entry in sorted(dirs) + sorted(files):
            name = entry if relative == "." else f"{relative}/{entry}"
            tar.add(os.path.join(current, entry), arcname=name if contents else f"{top}/{name}", recursive=False)


# ---- extracting a tar at a destination --------------------------------------------------------


def _safe_name(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidArgumentError(f"archive entry {name!r} leaves its directory", op="cp")
    return "/".join(parts)


def _own(path: Path, member: tarfile.TarInfo, owner: Owner) -> None:
    if owner.uid is not None:
        os.lchown(path, owner.uid, owner.gid if owner.gid is not None else owner.uid)
    else:
        os.lchown(path, member.uid + owner.shift, member.gid + owner.shift)


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, resolve: Resolver,
                    owner: Owner) -> None:
    if member.isdir():
        if not target.is_dir() or target.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            target.mkdir()
    else:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            target.unlink()
        if member.issym():
            os.symlink(member.linkname, target)
        elif member.islnk():
            os.link(resolve(_safe_name(member.linkname)), target, follow_symlinks=False)
        elif member.isreg():
            stream = tar.extractfile(member)
            assert stream is not None
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out, stream:
                while chunk := stream.read(1 << 20):
                    out.write(chunk)
        elif member.isfifo():
            os.mkfifo(target)
        else:
            return  # device nodes are not copied: a workload gets devices with --device
    _own(target, member, owner)
    if not member.issym():
        os.chmod(target, member.mode & 0o7777)
        os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)


def extract(source: BinaryIO, resolve: Resolver, owner: Owner, *, rename_top: str | None = None) -> None:
    """Write a tar stream's entries where ``resolve`` places them (``rename_top``: the first path component
    gets this name, as `cp SRC DEST` saves SRC under the name DEST)."""
    with tarfile.open(fileobj=source, mode="r|*") as tar:
        for member in tar:
            name = _safe_name(member.name)
            if rename_top is not None:
                _, sep, rest = name.partition("/")
                name = rename_top + sep + rest
            target = resolve(name)
            if not target.parent.is_dir():
                raise NotFoundError(f"no directory to copy {name} into", op="cp", path=str(target.parent))
            _extract_member(tar, member, target, resolve, owner)


# ---- Docker's destination rules ---------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    directory: str  # where the entries go
    rename_top: str | None = None  # the name the source's top entry takes (None: its own)
    create: bool = False  # the directory is made first (SRC/. into a new directory)


def place(source_is_dir: bool, contents: bool, destination: str, destination_kind: str) -> Placement:
    """Where a source lands (Docker's rules). ``destination_kind``: "dir", "file" or "missing"."""
    if destination_kind == "dir":
        return Placement(destination)
    if destination.endswith("/") and not contents:
        raise NotFoundError(f"destination directory {destination} does not exist", op="cp", path=destination)
    if destination_kind == "file" and source_is_dir:
        raise InvalidArgumentError(f"cannot copy a directory over the file {destination}", op="cp", path=destination)
    if contents:
        return Placement(destination, create=True)
    parent, _, name = destination.rstrip("/").rpartition("/")
    return Placement(parent or ("/" if destination.startswith("/") else "."), name)


def _kind(path: Path) -> str:
    """"dir", "file" or "missing" (a directory through a symlink counts as one, as Docker follows it)."""
    if not os.path.lexists(path):
        return "missing"
    return "dir" if path.is_dir() else "file"


# ---- the four directions ----------------------------------------------------------------------


def archive_from(ctx: Context, name_or_id: str, path: str, out: BinaryIO, *, follow_link: bool = False) -> None:
    """`cp NAME:PATH -`: a tar of the container's PATH on ``out``."""
    source_path, contents = _split_source(path)
    with _container_files(ctx, name_or_id, "cp") as (_, resolve):
        host = resolve(source_path)
        if not os.path.lexists(host):
            raise NotFoundError(f"no such file or directory in the container: {path}", op="cp", path=path)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _write_tree(tar, host, Path(source_path).name or "root", contents=contents, follow_link=follow_link)


def archive_to(ctx: Context, name_or_id: str, path: str, source: BinaryIO) -> None:
    """`cp - NAME:PATH`: a tar from ``source`` extracted into the container's directory PATH."""
    with _container_files(ctx, name_or_id, "cp") as (record, resolve):
        if _kind(resolve(path)) != "dir":
            raise NotFoundError(f"destination {path} is not a directory in {record.name}", op="cp", path=path)
        base = path.rstrip("/") or "/"
        extract(source, lambda rel: resolve(f"{base}/{rel}"), _container_owner(record, archive=True))


def copy_from(ctx: Context, name_or_id: str, path: str, destination: Path, *, follow_link: bool = False) -> None:
    """`cp NAME:PATH DEST`: the container's PATH to the host."""
    source_path, contents = _split_source(path)
    with tempfile.TemporaryFile(dir=ctx.paths.tmp) as spool:
        with _container_files(ctx, name_or_id, "cp") as (_, resolve):
            host = resolve(source_path)
            if not os.path.lexists(host):
                raise NotFoundError(f"no such file or directory in the container: {path}", op="cp", path=path)
            is_dir = os.path.isdir(host) if follow_link else stat.S_ISDIR(os.lstat(host).st_mode)
            top = Path(source_path).name or "root"
            with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
                _write_tree(tar, host, top, contents=contents, follow_link=follow_link)
        spool.seek(0)
        placement = place(is_dir, contents, str(destination), _kind(destination))
        if placement.create:
            Path(placement.directory).mkdir()
        base = Path(placement.directory).resolve()
        extract(spool, lambda rel: _host_target(base, rel), Owner(uid=os.getuid(), gid=os.getgid()),
                rename_top=placement.rename_top)


def _host_target(base: Path, relative: str) -> Path:
    """A host path under ``base``, refused if a symlink the copy made would lead it elsewhere."""
    target = base / relative
    if not os.path.realpath(target.parent).startswith(str(base)):
        raise InvalidArgumentError(f"{relative} would be written outside {base}", op="cp", path=str(target))
    return target


def copy_to(ctx: Context, name_or_id: str, source: Path, path: str, *, archive: bool = False,
            follow_link: bool = False) -> None:
    """`cp SRC NAME:PATH`: a host file or directory into the container."""
    source_path, contents = _split_source(str(source))
    host = Path(source_path)
    if not os.path.lexists(host):
        raise NotFoundError(f"no such file or directory: {source}", op="cp", path=str(source))
    is_dir = host.is_dir() if follow_link else stat.S_ISDIR(os.lstat(host).st_mode)
    with tempfile.TemporaryFile(dir=ctx.paths.tmp) as spool:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _write_tree(tar, host, host.name or "root", contents=contents, follow_link=follow_link)
        spool.seek(0)
        with _container_files(ctx, name_or_id, "cp") as (record, resolve):
            placement = place(is_dir, contents, path, _kind(resolve(path)))
            base = placement.directory.rstrip("/") or "/"
            if placement.create:
                made = resolve(base)
                made.mkdir(mode=0o755)
                owner = _container_owner(record, archive=False)
                os.lchown(made, owner.uid or 0, owner.gid or 0)
            try:
                extract(spool, lambda rel: resolve(f"{base}/{rel}"), _container_owner(record, archive),
                        rename_top=placement.rename_top)
            except OSError as exc:
                raise WorkloadError(f"cannot write {exc.filename or path}: {exc.strerror}", op="cp",
                                    id=record.name) from exc

