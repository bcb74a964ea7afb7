"""A read-only view of a file tree made of layer directories, for COPY and ADD to read from.

The build context is a tree of one layer (filtered by its .dockerignore); a stage or an image is the
stack of its unpacked layer directories in overlayfs form, merged here without mounting anything: the
topmost layer holding a name wins, a whiteout (a 0/0 character device) hides the name in the layers
below, and an opaque directory (trusted.overlay.opaque=y) hides the directories below it
(overlayfs.rst, "whiteouts and opaque directories"). Nothing is ever written.

Symbolic links are resolved by the tree itself, one component at a time, never by the kernel:

- ``Escape.REFUSE`` (the build context): a link whose target is absolute or climbs above the root is
  refused with TreeEscapeError, so nothing outside the context is ever read;
- ``Escape.SCOPE`` (a stage's or image's root file system): targets resolve inside the tree, as if it
  were the root (an absolute target starts at the tree's root, ``..`` stops there), as Docker reads
  ``COPY --from``.

Patterns (``COPY *.txt``) use Go's filepath.Match syntax per path element, as Docker does.
"""

from __future__ import annotations

import enum
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from isobox.builder.dockerignore import IgnoreRules
from isobox.errors import InvalidArgumentError

__all__ = ["Entry", "Escape", "LayeredTree", "TreeEscapeError", "has_magic", "match_element"]

MAX_LINK_HOPS = 40  # as Linux's path walk (path_resolution(7)): a loop ends in an error, not a hang
OPAQUE_XATTR = "trusted.overlay.opaque"
_MAGIC = re.compile(r"[*?\[\\]")


class Escape(enum.Enum):
    REFUSE = enum.auto()
    SCOPE = enum.auto()


class TreeEscapeError(InvalidArgumentError):
    """A path of the build context leads outside it (through a symbolic link)."""


@dataclass(frozen=True)
class Entry:
    """One name of the merged tree: ``path`` relative to the root ("" for the root), its data in ``host``."""

    path: str
    host: Path
    info: os.stat_result
    layers: tuple[Path, ...] = ()  # a directory: its directory in each layer that shows through, top first

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.info.st_mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.info.st_mode)


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def has_magic(text: str) -> bool:
    return _MAGIC.search(text) is not None


def _element_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match for one element: * and ? (never "/"), [a-z] and [^a-z], \\ escapes."""
    out, pos = [], 0
    while pos < len(pattern):
        ch = pattern[pos]
        pos += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and pos < len(pattern):
            out.append(re.escape(pattern[pos]))
            pos += 1
        elif ch == "[":
            end = pattern.find("]", pos + 1)
            if end < 0:
                raise InvalidArgumentError(f"bad pattern {pattern!r}: unterminated [", op="match pattern")
            body = pattern[pos:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            pos = end + 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z")


def match_element(pattern: str, name: str) -> bool:
    return _element_regex(pattern).match(name) is not None


class LayeredTree:
    """The merged view of ``layers`` (lowest first); ``ignore`` hides context paths (.dockerignore)."""

    def __init__(self, layers: Sequence[Path], *, escape: Escape, what: str,
                 ignore: IgnoreRules | None = None) -> None:
        if not layers:
            raise InvalidArgumentError(f"{what} has no file system", op="read build source")
        self.roots = tuple(reversed([Path(layer) for layer in layers]))  # top first
        self.escape = escape
        self.what = what
        self.ignore = ignore if ignore is not None and ignore.patterns else None

    def root(self) -> Entry:
        return Entry("", self.roots[0], os.lstat(self.roots[0]), self.roots)

    # ---- one name ------------------------------------------------------------------------------

    def _child(self, parent: Sequence[Path], parent_path: str, name: str) -> Entry | None:
        """``name`` in the directory whose layer directories are ``parent`` (top first)."""
        path = f"{parent_path}/{name}" if parent_path else name
        for index, directory in enumerate(parent):
            host = directory / name
            info = _lstat(host)
            if info is None:
                continue
            if _is_whiteout(info):
                return None
            if not self._visible(path, stat.S_ISDIR(info.st_mode)):
                return None
            if not stat.S_ISDIR(info.st_mode):
                return Entry(path, host, info)
            return Entry(path, host, info, self._dir_layers(host, parent[index + 1:], name))
        return None

    @staticmethod
    def _dir_layers(top: Path, lower: Sequence[Path], name: str) -> tuple[Path, ...]:
        found = [top]
        if _is_opaque(top):
            return tuple(found)
        for directory in lower:
            info = _lstat(directory / name)
            if info is None:
                continue
            if not stat.S_ISDIR(info.st_mode):
                break  # a whiteout or a file hides everything of this name further down
            found.append(directory / name)
            if _is_opaque(directory / name):
                break
        return tuple(found)

    def _visible(self, path: str, is_dir: bool) -> bool:
        if self.ignore is None or not self.ignore.excludes(path):
            return True
        return is_dir and self.ignore.must_walk(path)  # an exception may re-include something below

    def _escaped(self, path: str, target: str) -> TreeEscapeError:
        return TreeEscapeError(f"{path!r} is a symbolic link to {target!r}, which is outside {self.what}",
                               op="read build source", path=path)

    def resolve(self, path: str, *, follow: bool = True) -> Entry | None:
        """The entry at ``path`` (components separated by "/", relative to the root), following symbolic
        links on the way (and the last one too with ``follow``); None when nothing is there."""
        pending = [part for part in path.split("/") if part not in ("", ".")]
        current = self.root()
        hops = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                current = self._parent(current, path)
                continue
            if not current.is_dir:
                return None
            found = self._child(current.layers, current.path, name)
            if found is None:
                return None
            if found.is_symlink and (pending or follow):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise InvalidArgumentError(f"too many levels of symbolic links in {path!r} ({self.what})",
                                               op="read build source", path=path)
                target = os.readlink(found.host)
                if target.startswith("/"):
                    if self.escape is Escape.REFUSE:
                        raise self._escaped(found.path, target)
                    current = self.root()
                pending[:0] = [part for part in target.split("/") if part not in ("", ".")]
                if self.escape is Escape.REFUSE and _climbs_out(current.path, target):
                    raise self._escaped(found.path, target)
                continue
            current = found
        return current

    def _parent(self, current: Entry, path: str) -> Entry:
        if not current.path:
            return current  # only reached in SCOPE mode: REFUSE checks targets before following them
        parent = self.resolve(current.path.rpartition("/")[0], follow=False)
        if parent is None:
            raise InvalidArgumentError(f"{path!r} changed while it was read ({self.what})", op="read build source")
        return parent

    # ---- many names ----------------------------------------------------------------------------

    def children(self, directory: Entry) -> list[Entry]:
        """The entries of a directory, merged across layers, sorted by name."""
        seen: set[str] = set()
        found: list[Entry] = []
        for layer_dir in directory.layers:
            try:
                names = os.listdir(layer_dir)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if name in seen:
                    continue
                seen.add(name)
                child = self._child(directory.layers, directory.path, name)
                if child is not None:
                    found.append(child)
        return sorted(found, key=lambda entry: entry.name)

    def walk(self, directory: Entry) -> Iterator[Entry]:
        """Every entry below ``directory``, parents before children, in name order."""
        for child in self.children(directory):
            yield child
            if child.is_dir:
                yield from self.walk(child)

    def glob(self, pattern: str) -> list[Entry]:
        """Entries matching ``pattern`` (magic in any element); a pattern without magic is resolved."""
        parts = [part for part in pattern.split("/") if part not in ("", ".")]
        if not any(has_magic(part) for part in parts):
            found = self.resolve("/".join(parts))
            return [found] if found is not None else []
        matches = [self.root()]
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            following: list[Entry] = []
            for entry in matches:
                following += self._step(entry, part, follow=not last)
            matches = following
        return sorted(matches, key=lambda entry: entry.path)

    def _step(self, entry: Entry, part: str, *, follow: bool) -> list[Entry]:
        if not entry.is_dir:
            return []
        if not has_magic(part):
            found = self.resolve(f"{entry.path}/{part}" if entry.path else part, follow=follow)
            return [found] if found is not None else []
        regex = _element_regex(part)
        picked = [child for child in self.children(entry) if regex.match(child.name)]
        if not follow:
            return picked
        resolved = [self.resolve(child.path) if child.is_symlink else child for child in picked]
        return [child for child in resolved if child is not None and child.is_dir]


def _climbs_out(base: str, target: str) -> bool:
    """Whether a relative link ``target`` in directory ``base`` names something above the root."""
    depth = len([part for part in base.split("/") if part])
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False
