"""The VM's root disk: the image's layers merged into one ext4 file system, cached per image.

The layers are directories in overlayfs form (whiteouts are 0/0 character devices, opaque
directories carry trusted.overlay.opaque=y). They are merged, lowest first, into a staging
directory by hard links (the layer files are shared and never modified; mkfs only reads them),
then `mkfs.ext4 -d` turns the directory into a raw image (mke2fs(8), -d root-directory). Each VM
gets a qcow2 overlay on that base (qemu-img create -b BASE -F raw), so a second start of the same
image converts nothing and VMs share one base.

Merging never follows a symlink: each directory is lstat'ed before descending into it, and an entry
of a higher layer replaces whatever non-directory (symlink included) a lower layer left there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from isobox.errors import HostError, UnsafeLayerError
from isobox.linux.tree import discard_tree, remove_tree
from isobox.state.locks import locked

log = logging.getLogger(__name__)

OPAQUE_XATTR = "trusted.overlay.opaque"
MIN_SIZE_BYTES = 512 * 1024 * 1024
HEADROOM_BYTES = 1024 * 1024 * 1024  # free space for the workload's writes (sparse: costs nothing)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _remove(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        remove_tree(path)  # a merged copy of layers: any depth a layer has
    else:
        os.unlink(path)


def _make_dir(source: str, target: str, st: os.stat_result) -> None:
    try:
        existing = os.lstat(target)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISDIR(existing.st_mode):
        os.unlink(target)  # a lower layer's file or symlink is replaced by this directory
        existing = None
    if existing is None:
        os.mkdir(target)
    elif _is_opaque(source):
        for name in os.listdir(target):
            _remove(os.path.join(target, name))
    os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(target, stat.S_IMODE(st.st_mode))


def _place(source: str, target: str, st: os.stat_result) -> None:
    with contextlib.suppress(FileNotFoundError):
        _remove(target)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), target)
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
        return
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:  # another file system: copy, keeping owner, mode and times
        if stat.S_ISREG(st.st_mode):
            shutil.copy2(source, target, follow_symlinks=False)
        else:
            os.mknod(target, st.st_mode, st.st_rdev)
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)


def apply_layer(layer: str, staging: str) -> None:
    """Apply one overlayfs-form layer directory on top of the staging directory."""
    for directory, dirnames, filenames in os.walk(layer, followlinks=False):
        relative = os.path.relpath(directory, layer)
        target_dir = staging if relative == "." else os.path.join(staging, relative)
        if not stat.S_ISDIR(os.lstat(target_dir).st_mode):
            raise UnsafeLayerError("staging path is not a directory", op="merge layers", path=target_dir)
        for name in [*dirnames, *filenames]:
            source, target = os.path.join(directory, name), os.path.join(target_dir, name)
            st = os.lstat(source)
            if _is_whiteout(st):
                with contextlib.suppress(FileNotFoundError):
                    _remove(target)
            elif stat.S_ISDIR(st.st_mode):
                _make_dir(source, target, st)
            else:
                _place(source, target, st)
        # os.walk lists symlinks to directories among dirnames but does not descend (followlinks=False).


def _tree_bytes(root: str) -> int:
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


def build_base(layers: tuple[str, ...], target: Path, scratch: Path) -> None:
    """Merge the layers and write an ext4 raw image to target (atomically: temp file, then rename)."""
    scratch.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="vm-rootfs-", dir=scratch)
    temporary = target.with_name(f"{target.name}.tmp{os.getpid()}")
    try:
        for layer in layers:
            apply_layer(layer, staging)
        size = max(MIN_SIZE_BYTES, int(_tree_bytes(staging) * 1.2) + HEADROOM_BYTES)
        with open(temporary, "wb") as handle:
            handle.truncate(size)
        command = ["mkfs.ext4", "-q", "-F", "-L", "isobox-root", "-E", "root_owner=0:0", "-d", staging, str(temporary)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise HostError(f"mkfs.ext4 failed: {result.stderr.strip()}", op="convert image to disk", path=str(target))
        os.replace(temporary, target)
    except OSError as exc:
        raise HostError(f"cannot build the root disk: {exc}", op="convert image to disk", path=str(target)) from exc
    finally:
        temporary.unlink(missing_ok=True)
        discard_tree(staging)


def ensure_base(cache_dir: Path, lock_dir: Path, image_id: str, layers: tuple[str, ...]) -> Path:
    """The cached raw root disk of an image, converted on first use under a per-image lock."""
    key = image_id.split(":", 1)[-1]
    target = cache_dir / "rootdisks" / f"{key}.raw"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(lock_dir, f"vm-rootdisk-{key[:32]}"):
        if not target.is_file():  # another process may have converted it while we waited
            log.debug("converting image %s to %s", image_id, target)
            build_base(layers, target, cache_dir / "tmp")
    return target


def discard_base(cache_dir: Path, lock_dir: Path, image_id: str) -> None:
    """Remove an image's cached root disk (a build step's, which no later VM will boot again)."""
    key = image_id.split(":", 1)[-1]
    with locked(lock_dir, f"vm-rootdisk-{key[:32]}"):
        (cache_dir / "rootdisks" / f"{key}.raw").unlink(missing_ok=True)


def create_overlay(base: Path, overlay: Path, base_format: str = "raw") -> None:
    """A per-VM qcow2 whose reads fall through to the shared base (qemu-img(1), create -b -F)."""
    command = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", base_format, str(overlay)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise HostError(f"qemu-img create failed: {result.stderr.strip()}", op="create VM disk", path=str(overlay))


def image_file(layers: tuple[str, ...], relative: str) -> str | None:
    """Text of a regular file in the merged image (topmost layer wins), without merging everything."""
    parts = relative.strip("/").split("/")
    for layer in reversed(layers):
        path = os.path.join(layer, *parts)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            if any(_is_opaque(os.path.join(layer, *parts[:i])) for i in range(1, len(parts))):
                return None
            continue
        if not stat.S_ISREG(st.st_mode) or any(
            os.path.islink(os.path.join(layer, *parts[:i])) for i in range(1, len(parts))
        ):
            return None
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(1024 * 1024)
    return None
