"""Safe application of one layer tarball into its own, empty layer directory.

This is a security boundary: the tarball is hostile until proven otherwise. Every filesystem call is
made relative to a directory file descriptor opened with O_NOFOLLOW at each path component, so no
symlink, whether carried by the layer or planted earlier in it, is ever followed on the way to a write.
Rejected outright (UnsafeLayerError naming the entry):

- names with '..' components or that normalise to nothing; whiteouts that would name '..' or '.';
- a path whose parent component is a symlink (writing through it could land anywhere);
- hard links whose target leaves the layer or does not exist in it;
- device nodes, unless the policy allows them (runtimes give containers their own /dev);
- xattrs other than user.* and security.capability: trusted.overlay.* (and user.overlay.* for a rootless
  overlayfs) would steer overlayfs, security.selinux would relabel; user.overlay.* is refused too;
- more uncompressed bytes or entries than the policy allows (a decompression bomb), counting tar headers
  and data after the end-of-archive marker.

Neutralised rather than rejected: absolute names (kept inside the layer, as tar does). Directory modes
are applied last, through O_NOFOLLOW descriptors, so a later entry that replaces a directory by a symlink
cannot redirect the chmod; hard links keep their target's mode (chmod would follow a linked symlink).

Whiteouts become what overlayfs understands, as containerd's overlay snapshotter does: `.wh.NAME` a
0/0 character device, `.wh..wh..opq` the trusted.overlay.opaque xattr on its directory.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from isobox.errors import ImageError, UnsafeLayerError

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_ALLOWED_XATTR_PREFIXES = ("user.", "security.capability")
# overlayfs mounted with "userxattr" (rootless) reads its own metadata from user.overlay.* (overlayfs.rst,
# "User xattr"): a layer must not carry it either.
_FORBIDDEN_XATTR_PREFIXES = ("user.overlay.",)
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Tar headers, padding and the end-of-archive blocks on top of the files' own bytes.
_STREAM_OVERHEAD = 64 * 1024 * 1024


@dataclass(frozen=True)
class UnpackPolicy:
    max_bytes: int = 64 * 1024**3       # uncompressed size of one layer
    max_entries: int = 2_000_000
    allow_devices: bool = False


@dataclass(frozen=True)
class UnpackResult:
    entries: int
    bytes_written: int
    diff_id: str  # sha256 of the uncompressed tar stream, to check against the image config


def open_decompressed(stream: IO[bytes]) -> IO[bytes]:
    """Wrap a layer blob in the decompressor its magic bytes call for (gzip, zstd, or plain tar)."""
    head = stream.read(4)
    rest = _Prefixed(head, stream)
    if head.startswith(_GZIP_MAGIC):
        import gzip

        return gzip.GzipFile(fileobj=rest, mode="rb")  # type: ignore[return-value]
    if head.startswith(_ZSTD_MAGIC):
        import zstandard

        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], rest), read_across_frames=True
        )
        return reader
    return rest  # type: ignore[return-value]


class _Prefixed(io.RawIOBase):
    """A stream with a few already-read bytes put back in front."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        if self._head:
            n = min(len(self._head), len(view))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Hashing:
    """Computes the sha256 of everything read through it (the layer's diff_id), up to a byte limit.

    The limit bounds what the per-file check cannot see: huge tar/pax headers and data after the
    end-of-archive marker, both of which a decompression bomb can use.
    """

    def __init__(self, stream: IO[bytes], limit: int, label: str) -> None:
        import hashlib

        self.stream = stream
        self.hasher = hashlib.sha256()
        self.total = 0
        self.limit = limit
        self.label = label

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.total += len(data)
        if self.total > self.limit:
            raise UnsafeLayerError(
                f"layer {self.label} decompresses to more than the limit of {self.limit} bytes", op="unpack layer"
            )
        self.hasher.update(data)
        return data


def unpack_layer(blob: Path, dest: Path, *, policy: UnpackPolicy = UnpackPolicy(), what: str = "") -> UnpackResult:
    """Apply the layer ``blob`` into ``dest`` (which must exist and be empty)."""
    label = what or blob.name
    with open(blob, "rb") as raw:
        try:
            stream = _Hashing(open_decompressed(raw), policy.max_bytes + _STREAM_OVERHEAD, label)
            with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
                entries, written = _Applier(dest, policy, label).apply(archive)
            while stream.read(1 << 20):  # the tar end padding counts in the diff_id too
                pass
            return UnpackResult(entries, written, "sha256:" + stream.hasher.hexdigest())
        except UnsafeLayerError:
            raise
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ImageError(f"no space left unpacking layer {label}", op="unpack layer", path=str(dest)) from exc
            raise ImageError(f"layer {label} is not a valid tar stream: {exc}", op="unpack layer") from exc
        except Exception as exc:  # zstandard raises its own ZstdError
            raise ImageError(f"layer {label} could not be decompressed: {exc}", op="unpack layer") from exc


def split_member_name(name: str) -> list[str]:
    """'./a/b/', '/a/b', 'a//b' → ['a', 'b']; raises on '..' components."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeLayerError(f"entry {name!r} has a '..' component", op="unpack layer")
    return parts


class _Applier:
    def __init__(self, dest: Path, policy: UnpackPolicy, label: str) -> None:
        self.dest = dest
        self.policy = policy
        self.label = label
        self.bytes_written = 0
        self.entries = 0
        # Last entry wins (tar semantics); applied at the end, deepest first.
        self.dir_modes: dict[tuple[str, ...], tuple[int, int]] = {}

    def fail(self, member: str, why: str) -> UnsafeLayerError:
        return UnsafeLayerError(f"layer {self.label}: entry {member!r} {why}", op="unpack layer", path=str(self.dest))

    def apply(self, archive: tarfile.TarFile) -> tuple[int, int]:
        root_fd = os.open(self.dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            for member in archive:
                self.entries += 1
                if self.entries > self.policy.max_entries:
                    raise self.fail(member.name, f"exceeds the limit of {self.policy.max_entries} entries")
                self.apply_member(root_fd, archive, member)
            # Directory modes last, deepest first, so read-only directories do not block their children.
            for key in sorted(self.dir_modes, key=len, reverse=True):
                self.finish_dir(root_fd, list(key), *self.dir_modes[key])
        finally:
            os.close(root_fd)
        return self.entries, self.bytes_written

    def finish_dir(self, root_fd: int, parts: list[str], mode: int, mtime: int) -> None:
        """chmod/utime through an O_NOFOLLOW descriptor: a later entry may have replaced the directory by a
        symlink, and chmod by name would follow it out of the layer. Such replaced entries are skipped."""
        with self.parent_fd(root_fd, parts[:-1], "/".join(parts)) as parent:
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    return
                raise
            try:
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)

    @contextmanager
    def parent_fd(self, root_fd: int, parts: list[str], member: str) -> Iterator[int]:
        """Open the parent directory of an entry, component by component, never following a symlink.

        Missing intermediate directories are created (tar streams may omit them), as 0755 root-owned.
        """
        fd = os.dup(root_fd)
        try:
            for part in parts:
                try:
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise self.fail(member, f"goes through {part!r}, which is not a directory (symlink?)") from exc
                    raise
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    def apply_member(self, root_fd: int, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = split_member_name(member.name)
        if not parts:
            if member.isdir():
                return  # the root itself
            raise self.fail(member.name, "names the layer root")
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self.apply_whiteout(root_fd, parts, member.name)
            return
        xattrs = self.check_xattrs(member)
        with self.parent_fd(root_fd, parts[:-1], member.name) as parent:
            self.make_room(parent, base, member)
            if member.isdir():
                try:
                    os.mkdir(base, 0o700, dir_fd=parent)
                except FileExistsError:
                    pass
                self.dir_modes[tuple(parts)] = (stat.S_IMODE(member.mode), int(member.mtime))
            elif member.isreg():
                self.write_file(parent, base, archive, member)
            elif member.issym():
                os.symlink(member.linkname, base, dir_fd=parent)
            elif member.islnk():
                self.make_hardlink(root_fd, parent, base, member)
            elif member.isfifo():
                os.mknod(base, stat.S_IFIFO | 0o600, dir_fd=parent)
            elif member.ischr() or member.isblk():
                if not self.policy.allow_devices:
                    raise self.fail(member.name, "is a device node, which the unpack policy forbids")
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
            else:
                raise self.fail(member.name, f"has an unsupported tar type {member.type!r}")
            os.chown(base, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
            # Not for hard links: they share their target's inode (and mode), which may be a symlink that
            # chmod would follow out of the layer. Files, FIFOs and devices were just created by us.
            if not member.issym() and not member.isdir() and not member.islnk():
                os.chmod(base, stat.S_IMODE(member.mode), dir_fd=parent, follow_symlinks=False)
            for key, value in xattrs.items():
                _setxattr_at(parent, base, key, value)
            if not member.isdir() and not member.islnk():
                os.utime(base, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)

    def make_room(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        """A later entry replaces an earlier one of the same name (tar semantics); dirs merge with dirs."""
        try:
            existing = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(existing.st_mode):
            if member.isdir():
                return
            _rmtree_at(parent, base)
        else:
            os.unlink(base, dir_fd=parent)

    def write_file(self, parent: int, base: str, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if self.bytes_written + member.size > self.policy.max_bytes:
            raise self.fail(member.name, f"would take the layer past its limit of {self.policy.max_bytes} bytes")
        source = archive.extractfile(member)
        assert source is not None
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(1 << 20):
                self.bytes_written += len(chunk)
                if self.bytes_written > self.policy.max_bytes:
                    raise self.fail(member.name, f"takes the layer past its limit of {self.policy.max_bytes} bytes")
                out.write(chunk)

    def make_hardlink(self, root_fd: int, parent: int, base: str, member: tarfile.TarInfo) -> None:
        target = split_member_name(member.linkname)
        if not target or target[-1].startswith(WHITEOUT_PREFIX):
            raise self.fail(member.name, f"is a hard link to {member.linkname!r}, which is not a file of this layer")
        with self.parent_fd(root_fd, target[:-1], member.name) as target_parent:
            try:
                info = os.stat(target[-1], dir_fd=target_parent, follow_symlinks=False)
            except FileNotFoundError as exc:
                raise self.fail(member.name, f"links to {member.linkname!r}, which this layer does not have") from exc
            if stat.S_ISDIR(info.st_mode):
                raise self.fail(member.name, f"is a hard link to the directory {member.linkname!r}")
            os.link(target[-1], base, src_dir_fd=target_parent, dst_dir_fd=parent, follow_symlinks=False)

    def apply_whiteout(self, root_fd: int, parts: list[str], name: str) -> None:
        base = parts[-1]
        with self.parent_fd(root_fd, parts[:-1], name) as parent:
            if base == OPAQUE_MARKER:
                _setxattr_at(parent, ".", "trusted.overlay.opaque", b"y")
                return
            hidden = base[len(WHITEOUT_PREFIX) :]
            if hidden in ("", ".", "..") or "/" in hidden:
                raise self.fail(name, "is a whiteout of an invalid name")
            try:
                existing = os.stat(hidden, dir_fd=parent, follow_symlinks=False)
                if stat.S_ISDIR(existing.st_mode):
                    _rmtree_at(parent, hidden)
                else:
                    os.unlink(hidden, dir_fd=parent)
            except FileNotFoundError:
                pass
            os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)

    def check_xattrs(self, member: tarfile.TarInfo) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for key, value in (member.pax_headers or {}).items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr.") :]
            if not name.startswith(_ALLOWED_XATTR_PREFIXES) or name.startswith(_FORBIDDEN_XATTR_PREFIXES):
                raise self.fail(member.name, f"carries the xattr {name!r}, which layers may not set")
            found[name] = value.encode("utf-8", "surrogateescape")
        return found


def _setxattr_at(dir_fd: int, name: str, key: str, value: bytes) -> None:
    # os.setxattr has no dir_fd; /proc/self/fd/N/NAME resolves the parent without path lookup races,
    # and follow_symlinks=False keeps a symlink entry itself as the target.
    os.setxattr(f"/proc/self/fd/{dir_fd}/{name}", key, value, follow_symlinks=False)


def _rmtree_at(parent: int, name: str) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        for entry in os.listdir(fd):
            info = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                _rmtree_at(fd, entry)
            else:
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)
