"""A RUN step as a request to the host (service/build_run.py runs it as a workload), and the mounts it has.

``RUN --mount`` types (the Dockerfile reference, "RUN --mount"):

- ``bind``: a directory or file of the build context (after .dockerignore), of a stage or of an image,
  read-only unless ``rw`` (then a private copy, whose changes are dropped). It is materialized here into
  the build's private directory (hard links where read-only, copies otherwise), so the step sees what
  COPY would see and nothing more;
- ``cache``: a directory kept across builds, one per ``id`` (default: its target), shared, locked or
  private as ``sharing`` says (private ones are locked, so never two steps at once);
- ``tmpfs``: a fresh tmpfs of ``size``;
- ``secret``: a ``--secret`` file at /run/secrets/ID (or ``target``), never in a layer nor a cache key;
- ``ssh``: not supported by isobox build (refused with its reason).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from isobox.builder.mounts import CacheSharing, MountType, NetworkMode, RunMount
from isobox.builder.tree import Entry, LayeredTree
from isobox.errors import InvalidArgumentError, UnsupportedError
from isobox.images.store import LayerRecord

__all__ = ["BindMount", "CacheMount", "RunOutcome", "RunRequest", "SecretMount", "TmpfsMount", "materialize",
           "mount_target"]

SECRETS_DIR = "/run/secrets"


@dataclass(frozen=True)
class BindMount:
    target: str
    source: Path
    readonly: bool


@dataclass(frozen=True)
class CacheMount:
    target: str
    id: str
    sharing: CacheSharing
    readonly: bool
    mode: int
    uid: int
    gid: int


@dataclass(frozen=True)
class TmpfsMount:
    target: str
    size_bytes: int | None


@dataclass(frozen=True)
class SecretMount:
    target: str
    id: str
    required: bool
    mode: int
    uid: int
    gid: int


@dataclass(frozen=True)
class RunRequest:
    step: str  # "Dockerfile:4 RUN make", for messages and the workload's label
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    workdir: str
    user: str
    layers: tuple[LayerRecord, ...]
    image_id: str  # the base image's id while the stage has no layer of its own, else its top chain ID
    network: NetworkMode
    binds: tuple[BindMount, ...] = ()
    caches: tuple[CacheMount, ...] = ()
    tmpfs: tuple[TmpfsMount, ...] = ()
    secrets: tuple[SecretMount, ...] = ()
    script: tuple[str, bytes] | None = None  # a "#!" heredoc: its name under /dev/pipes and its text


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int
    diff: Path | None  # the changes as a layer tar (None when the step failed)
    mounted: frozenset[str]  # every path the host mounted over the image (relative, no leading "/")
    last_lines: tuple[str, ...]
    workload: str


def mount_target(mount: RunMount, workdir: str) -> str:
    """The absolute, clean target of a mount (a relative one is relative to the WORKDIR)."""
    target = mount.target
    if mount.type is MountType.SECRET and not target:
        target = f"{SECRETS_DIR}/{mount.id or posixpath.basename(mount.source)}"
    if not target:
        raise InvalidArgumentError(f"--mount {mount.text!r} needs a target", op="build")
    path = posixpath.normpath(posixpath.join(workdir or "/", target))
    if path == "/":
        raise InvalidArgumentError(f"--mount {mount.text!r} cannot be mounted over /", op="build")
    return path


def refuse_unsupported(mount: RunMount) -> None:
    if mount.type is MountType.SSH:
        raise UnsupportedError("RUN --mount=type=ssh is not supported by isobox build (no SSH agent is forwarded)"
                               ": fetch what needs SSH outside the build, or use a secret", op="build")
    if mount.type is MountType.CACHE and mount.from_:
        raise UnsupportedError(f"--mount {mount.text!r}: a cache mount seeded from a stage (from=) is not "
                               "supported by isobox build", op="build")
    if mount.type is MountType.SECRET and mount.env:
        raise UnsupportedError(f"--mount {mount.text!r}: secrets as environment variables (env=) are not "
                               "supported by isobox build; read the file at its target instead", op="build")


def _copy_entry(tree: LayeredTree, entry: Entry, dest: Path, *, link: bool) -> None:
    info = entry.info
    if entry.is_dir:
        dest.mkdir(mode=0o700, exist_ok=True)
        for child in tree.children(entry):
            _copy_entry(tree, child, dest / child.name, link=link)
        os.chown(dest, info.st_uid, info.st_gid)
        os.chmod(dest, stat.S_IMODE(info.st_mode))
    elif entry.is_symlink:
        os.symlink(os.readlink(entry.host), dest)
        os.chown(dest, info.st_uid, info.st_gid, follow_symlinks=False)
    elif entry.is_file:
        if link:
            try:
                os.link(entry.host, dest, follow_symlinks=False)
                return
            except OSError:
                pass  # another file system: copied below
        shutil.copy2(entry.host, dest, follow_symlinks=False)
        os.chown(dest, info.st_uid, info.st_gid, follow_symlinks=False)


def materialize(tree: LayeredTree, entry: Entry, dest: Path, *, readonly: bool) -> Path:
    """``entry`` of ``tree`` as a real file or directory at ``dest`` (hard links when read-only)."""
    _copy_entry(tree, entry, dest, link=readonly)
    return dest
