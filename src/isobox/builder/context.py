"""The build context: where it is, which Dockerfile and ignore file apply, and the digests of what COPY,
ADD and RUN --mount=type=bind read from it.

    context = open_context(options, scratch)     a directory as it is, or a tar extracted into ``scratch``
    context.tree                                 the files COPY may see (.dockerignore applied, no escape)
    context.digest(entries)                      content, mode and owner of those entries, for cache keys

A directory context is read in place; an archive (``-``, ``POST /build``) is extracted by the image
store's hardened unpacker first; a Dockerfile alone (``docker build - < Dockerfile``) gets an empty
context. Nothing of the context is read outside its root: sources are checked by the COPY code, and the
tree refuses symbolic links that point out (builder/tree.py).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from isobox.builder.dockerignore import IgnoreRules, load_ignore_rules
from isobox.builder.options import BuildOptions
from isobox.builder.tree import Entry, Escape, LayeredTree, TreeEscapeError
from isobox.errors import InvalidArgumentError
from isobox.images.layer_limits import UnpackPolicy

__all__ = ["BuildContext", "open_context"]

DEFAULT_DOCKERFILE = "Dockerfile"
MAX_DOCKERFILE_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass
class BuildContext:
    root: Path
    dockerfile_text: str
    dockerfile_name: str  # what messages call it ("Dockerfile", "docker/app.Dockerfile", "-")
    ignore: IgnoreRules
    _digests: dict[tuple[int, int, int, int, int], str] = field(default_factory=dict)

    @property
    def tree(self) -> LayeredTree:
        return LayeredTree([self.root], escape=Escape.REFUSE, what="the build context", ignore=self.ignore)

    def file_digest(self, entry: Entry) -> str:
        """The sha256 of a regular file, once per build for each (device, inode, size, mtime, ctime)."""
        info = entry.info
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        found = self._digests.get(key)
        if found is None:
            hasher = hashlib.sha256()
            fd = os.open(entry.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    hasher.update(chunk)
            found = self._digests[key] = "sha256:" + hasher.hexdigest()
        return found

    def digest(self, entries: Iterable[tuple[str, Entry]]) -> str:
        """One digest of named entries: each name, type, mode, owner and content (a link: its target).
        Times are left out, as Docker leaves them out of its cache checksums."""
        hasher = hashlib.sha256()
        for name, entry in entries:
            info = entry.info
            kind = stat.S_IFMT(info.st_mode)
            if entry.is_file:
                content = self.file_digest(entry)
            elif entry.is_symlink:
                content = os.readlink(entry.host)
            else:
                content = ""
            line = f"{name}\0{kind:o}\0{stat.S_IMODE(info.st_mode):o}\0{info.st_uid}\0{info.st_gid}\0{content}\n"
            hasher.update(line.encode("utf-8", "surrogateescape"))
        return "sha256:" + hasher.hexdigest()


def _read_dockerfile(path: Path, shown: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_DOCKERFILE_BYTES:
            raise InvalidArgumentError(f"{shown} is {size} bytes, more than a Dockerfile may be", op="read Dockerfile",
                                       path=shown)
        return path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError as exc:
        raise InvalidArgumentError(f"cannot find the Dockerfile {shown}", op="read Dockerfile", path=shown) from exc
    except IsADirectoryError as exc:
        raise InvalidArgumentError(f"the Dockerfile {shown} is a directory", op="read Dockerfile",
                                   path=shown) from exc


def _host_dockerfile(options: BuildOptions, root: Path) -> Path:
    """-f for a directory context: as given (relative to the current directory, as docker's CLI reads it,
    else to the context), default ``CONTEXT/Dockerfile``."""
    if not options.dockerfile:
        return root / DEFAULT_DOCKERFILE
    given = Path(options.dockerfile).expanduser()
    if given.is_absolute() or given.exists():
        return given.absolute()
    return root / given


def _archive_dockerfile(options: BuildOptions, root: Path) -> tuple[Path, str]:
    """The Dockerfile inside an archive context: a path in it, never outside it."""
    name = options.dockerfile or DEFAULT_DOCKERFILE
    tree = LayeredTree([root], escape=Escape.REFUSE, what="the build context")
    if name.startswith("/") or ".." in name.split("/"):
        raise InvalidArgumentError(f"the Dockerfile {name!r} must be a path inside the build context",
                                   op="read Dockerfile", path=name)
    try:
        entry = tree.resolve(name)
    except TreeEscapeError as exc:
        raise InvalidArgumentError(f"the Dockerfile {name!r} leads outside the build context", op="read Dockerfile",
                                   path=name) from exc
    if entry is None or not entry.is_file:
        raise InvalidArgumentError(f"cannot find the Dockerfile {name!r} in the build context", op="read Dockerfile",
                                   path=name)
    return entry.host, name


def open_context(options: BuildOptions, scratch: Path) -> BuildContext:
    """The context a build reads; an archive is extracted into ``scratch`` (the build's private directory)."""
    if options.context_dir is not None:
        root = options.context_dir.absolute()
        if not root.is_dir():
            raise InvalidArgumentError(f"the build context {root} is not a directory", op="build", path=str(root))
        dockerfile = None if options.dockerfile_text is not None else _host_dockerfile(options, root)
    else:
        root = scratch / "context"
        root.mkdir(mode=0o700)
        dockerfile = None
        if options.context_tar is not None:
            from isobox.builder.archives import archive_kind, extract

            if archive_kind(options.context_tar) is None:
                # Not an archive: the whole input is the Dockerfile (`docker build - < Dockerfile`).
                text = _read_dockerfile(options.context_tar, "-")
                return BuildContext(root, text, "-", IgnoreRules())
            extract(options.context_tar, root, scratch=scratch, policy=UnpackPolicy.from_env(),
                    what="the build context archive")
            if options.dockerfile_text is None:
                dockerfile, shown = _archive_dockerfile(options, root)
                text = _read_dockerfile(dockerfile, shown)
                return BuildContext(root, text, shown, load_ignore_rules(root, dockerfile))
        if options.dockerfile_text is None:
            raise InvalidArgumentError("a build needs a context or a Dockerfile", op="build")
    if options.dockerfile_text is not None:
        return BuildContext(root, options.dockerfile_text, "-", load_ignore_rules(root, None))
    assert dockerfile is not None
    shown = os.path.relpath(dockerfile, root) if dockerfile.is_relative_to(root) else str(dockerfile)
    text = _read_dockerfile(dockerfile, shown)
    return BuildContext(root, text, shown, load_ignore_rules(root, dockerfile))
