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
- more uncompressed bytes or entries than the policy allows, or a compression ratio beyond it (a
  decompression bomb), counting tar headers and padding (images/layer_limits.py);
- anything but a proper end of archive after the last entry: a zero block, then only zero bytes. Python's
  tarfile takes a header with a bad checksum after the first entry for the end of the archive, which
  would apply a layer in part and accept it; here that is refused, as Go's archive/tar (containerd,
  Docker, Podman) refuses it.

Neutralised rather than rejected: absolute names (kept inside the layer, as tar does). Directory modes
are applied last, through O_NOFOLLOW descriptors, so a later entry that replaces a directory by a symlink
cannot redirect the chmod; hard links keep their target's mode (chmod would follow a linked symlink).

Whiteouts become what overlayfs understands, as containerd's overlay snapshotter does: `.wh.NAME` a
0/0 character device, `.wh..wh..opq` the trusted.overlay.opaque xattr on its directory. A whiteout
applies only to lower layers (image-spec layer.md, "Whiteouts": files present in the same layer as a
whiteout can only be hidden by whiteouts in later layers), so a whiteout naming something this layer
already has leaves it in place, whatever the order of the two entries. containerd and Docker, which
turn a whiteout into a device with mknod, keep the file when the whiteout comes first (the file replaces
the device) and fail with EEXIST when it comes second; isobox keeps the file in both orders, which is
what the spec says and cannot hide content a scan or another runtime sees.

Directory descriptors along the path of the last entry are kept open (entries come in tree order), so
an entry costs one openat per new path component instead of one per component.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from isobox.errors import ImageError, UnsafeLayerError
from isobox.images.decompress import Prefetched
from isobox.images.layer_limits import SpaceGuard, TailReader
from isobox.images.layer_limits import UnpackPolicy as UnpackPolicy
from isobox.linux.tree import remove_tree_at

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_ALLOWED_XATTR_PREFIXES = ("user.", "security.capability")
# overlayfs mounted with "userxattr" (rootless) reads its own metadata from user.overlay.* (overlayfs.rst,
# "User xattr"): a layer must not carry it either.
_FORBIDDEN_XATTR_PREFIXES = ("user.overlay.",)
_BLOCK = 512
# Directory descriptors kept open along the current path; deeper components are opened per entry.
_MAX_CACHED_DEPTH = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class UnpackResult:
    entries: int
    bytes_written: int
    diff_id: str  # sha256 of the uncompressed tar stream, to check against the image config


def unpack_layer(blob: Path, dest: Path, *, policy: UnpackPolicy = UnpackPolicy(), what: str = "") -> UnpackResult:
    """Apply the layer ``blob`` into ``dest`` (which must exist and be empty)."""
    label = what or blob.name
    with open(blob, "rb", buffering=0) as raw:
        try:
            limit, why = policy.stream_limit(os.fstat(raw.fileno()).st_size)
            space = SpaceGuard(str(dest), policy.reserve_bytes, label)
            with Prefetched(raw, limit, why, label) as decompressed:
                stream = TailReader(decompressed)  # type: ignore[arg-type]
                with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
                    entries, written = _Applier(dest, policy, label, space).apply(archive)
                    _check_end(stream, archive.offset, label)
                return UnpackResult(entries, written, "sha256:" + decompressed.hasher.hexdigest())
        except ImageError:
            raise
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                from isobox.linux.fs import mount_point

                raise ImageError(f"no space left unpacking layer {label}: the file system at {mount_point(dest)} is "
                                 "full", op="unpack layer", path=str(dest)) from exc
            raise ImageError(f"layer {label} is not a valid tar stream: {exc}", op="unpack layer") from exc
        except Exception as exc:  # zlib.error, zstandard's ZstdError
            raise ImageError(f"layer {label} could not be decompressed: {exc}", op="unpack layer") from exc


def _check_end(stream: TailReader, offset: int, label: str) -> None:
    """What follows the last entry must be a zero block, then zero padding only (POSIX ustar: two zero
    blocks end the archive; a lone one is accepted, as GNU tar and Go do). tarfile stops at the first
    header it cannot parse, at ``offset``: a bad checksum there would otherwise pass for the end."""
    rest = stream.since(offset)
    if rest is None:
        raise UnsafeLayerError(f"layer {label}: the end of the tar stream at byte {offset} cannot be checked",
                               op="unpack layer")
    while len(rest) < _BLOCK and (more := stream.read(_BLOCK)):
        rest += more
    if len(rest) < _BLOCK:
        raise UnsafeLayerError(f"layer {label} ends at byte {stream.total} without an end-of-archive marker "
                               "(truncated?)", op="unpack layer")
    if rest[:_BLOCK].count(0) != _BLOCK:
        raise UnsafeLayerError(f"layer {label} has an invalid tar header at byte {offset} (bad checksum or "
                               "garbage where the next entry or the end of the archive should be)", op="unpack layer")
    chunk = rest[_BLOCK:]
    while True:
        if chunk.count(0) != len(chunk):
            raise UnsafeLayerError(f"layer {label} has data after its end-of-archive marker (byte {offset})",
                                   op="unpack layer")
        chunk = stream.read(1 << 20)  # the end padding counts in the diff_id too
        if not chunk:
            return


def split_member_name(name: str) -> list[str]:
    """'./a/b/', '/a/b', 'a//b' → ['a', 'b']; raises on '..' components."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeLayerError(f"entry {name!r} has a '..' component", op="unpack layer")
    return parts


class _Applier:
    def __init__(self, dest: Path, policy: UnpackPolicy, label: str, space: SpaceGuard) -> None:
        self.dest = dest
        self.policy = policy
        self.label = label
        self.space = space
        self.bytes_written = 0
        self.entries = 0
        # Last entry wins (tar semantics); applied at the end, deepest first.
        self.dir_modes: dict[tuple[str, ...], tuple[int, int]] = {}
        # (name, fd) of the directories along the last entry's parent path, from the root down.
        self.open_dirs: list[tuple[str, int]] = []

    def fail(self, member: str, why: str) -> UnsafeLayerError:
        return UnsafeLayerError(f"layer {self.label}: entry {member!r} {why}", op="unpack layer", path=str(self.dest))

    def apply(self, archive: tarfile.TarFile) -> tuple[int, int]:
        root_fd = os.open(self.dest, _DIR_FLAGS)
        try:
            for member in archive:
                self.entries += 1
                if self.entries > self.policy.max_entries:
                    raise self.fail(member.name, f"exceeds the limit of {self.policy.max_entries} entries")
                self.apply_member(root_fd, archive, member)
            self.forget_dirs(0)
            # Directory modes last, deepest first, so read-only directories do not block their children.
            for key in sorted(self.dir_modes, key=len, reverse=True):
                self.finish_dir(root_fd, list(key), *self.dir_modes[key])
        finally:
            self.forget_dirs(0)
            os.close(root_fd)
        return self.entries, self.bytes_written

    def finish_dir(self, root_fd: int, parts: list[str], mode: int, mtime: int) -> None:
        """chmod/utime through an O_NOFOLLOW descriptor: a later entry may have replaced the directory by a
        symlink, and chmod by name would follow it out of the layer. Such replaced entries are skipped."""
        with self.parent_fd(root_fd, parts[:-1], "/".join(parts)) as parent:
            try:
                fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    return
                raise
            try:
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)

    def forget_dirs(self, depth: int) -> None:
        """Close the kept directory descriptors from ``depth`` down."""
        while len(self.open_dirs) > depth:
            os.close(self.open_dirs.pop()[1])

    def forget_path(self, parts: list[str]) -> None:
        """A directory at ``parts`` is being removed or replaced: no kept descriptor may still point into it."""
        kept = [name for name, _ in self.open_dirs]
        if kept[: len(parts)] == parts:
            self.forget_dirs(len(parts) - 1)

    def open_component(self, fd: int, part: str, member: str) -> int:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            os.mkdir(part, 0o755, dir_fd=fd)
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self.fail(member, f"goes through {part!r}, which is not a directory (symlink?)") from exc
            raise

    @contextmanager
    def parent_fd(self, root_fd: int, parts: list[str], member: str) -> Iterator[int]:
        """Open the parent directory of an entry, component by component, never following a symlink.

        Missing intermediate directories are created (tar streams may omit them), as 0755 root-owned.
        The first components' descriptors are kept for the next entry (see forget_path).
        """
        same = 0
        while same < min(len(parts), len(self.open_dirs)) and self.open_dirs[same][0] == parts[same]:
            same += 1
        self.forget_dirs(same)
        fd = self.open_dirs[-1][1] if self.open_dirs else root_fd
        while len(self.open_dirs) < min(len(parts), _MAX_CACHED_DEPTH):
            part = parts[len(self.open_dirs)]
            fd = self.open_component(fd, part, member)
            self.open_dirs.append((part, fd))
        if len(parts) <= _MAX_CACHED_DEPTH:
            yield fd
            return
        fd = os.dup(fd)
        try:
            for part in parts[_MAX_CACHED_DEPTH:]:
                nxt = self.open_component(fd, part, member)
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def walk(self, root_fd: int, parts: list[str], member: str) -> Iterator[int]:
        """Like parent_fd, but leaving the kept descriptors alone (the caller holds one of them)."""
        fd = os.dup(root_fd)
        try:
            for part in parts:
                nxt = self.open_component(fd, part, member)
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
            self.make_room(parent, base, member, parts)
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

    def make_room(self, parent: int, base: str, member: tarfile.TarInfo, parts: list[str]) -> None:
        """A later entry replaces an earlier one of the same name (tar semantics); dirs merge with dirs."""
        try:
            existing = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(existing.st_mode):
            if member.isdir():
                return
            self.forget_path(parts)
            remove_tree_at(parent, base)
        else:
            os.unlink(base, dir_fd=parent)

    def write_file(self, parent: int, base: str, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if self.bytes_written + member.size > self.policy.max_bytes:
            raise self.fail(member.name, f"would take the layer past its limit of {self.policy.max_bytes} bytes")
        self.space.will_write(member.size)
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
        with self.walk(root_fd, target[:-1], member.name) as target_parent:
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
                os.stat(hidden, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
                return
            # This layer has that name already (or whited it out already): a whiteout hides only what
            # lower layers have (see the module docstring), so the entry stays.
            log.debug("layer %s: whiteout %r of an entry of the same layer is ignored", self.label, name)

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
