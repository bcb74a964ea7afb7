"""COPY and ADD: which files go where (``plan_copy``; the layer that puts them there: copylayer.py).

The rules are the Dockerfile reference's ("COPY", "ADD"), as Docker's builders apply them:

- a relative destination is relative to the WORKDIR; one ending in "/" (or ".") is a directory;
- several sources (given, or matched by a wildcard) need a directory destination ending in "/";
- a directory source copies its contents, not itself; a file goes into a directory destination under
  its own name, else it becomes the destination; symbolic links inside copied directories stay links;
- files are owned by 0:0 unless ``--chown`` names a user and group (resolved against the image's
  /etc/passwd and /etc/group; a user alone uses its uid as the gid too, as the reference says), keep
  their mode unless ``--chmod``, and keep their modification time;
- ``ADD`` extracts a local tar archive (plain, gzip, bzip2, xz, zstd; by content) into the destination,
  keeping the archive's owners unless ``--chown``, and downloads http(s) URLs (mode 0600, the time of
  their Last-Modified header), checked against ``--checksum``;
- missing directories on the way to the destination are created (0755, owned by the --chown user);
  existing ones keep their mode, owner and time; symbolic links among them are followed inside the
  image's root, as Docker does.

Sources of the build context may not be absolute nor use "..", and never lead out of it (builder/tree.py);
sources of a stage or an image (``--from``) are paths in its root file system.
"""

from __future__ import annotations

import enum
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from isobox.builder import instructions as ins
from isobox.builder.dockerignore import IgnoreRules, parse_ignore
from isobox.builder.tree import Entry, LayeredTree, has_magic
from isobox.errors import InvalidArgumentError
from isobox.model.users import resolve_user

if TYPE_CHECKING:

    pass

__all__ = ["CopyPlan", "Download", "Placement", "PlacementKind", "is_url", "plan_copy"]

_CHMOD = re.compile(r"[0-7]{3,4}\Z")
_GIT_URL = re.compile(r"^(git@|git://|ssh://)|\.git(#.*)?$")


class PlacementKind(enum.Enum):
    DIR = enum.auto()
    FILE = enum.auto()
    SYMLINK = enum.auto()
    INLINE = enum.auto()  # a heredoc file
    ARCHIVE = enum.auto()  # a local archive ADD extracts into ``path``
    DOWNLOAD = enum.auto()  # a file ADD downloaded


@dataclass(frozen=True)
class Download:
    url: str
    path: Path  # where it was saved
    name: str  # the file name from the URL
    digest: str
    mtime: int | None  # from Last-Modified


@dataclass(frozen=True)
class Placement:
    path: str  # in the image, relative to its root ("" is the root)
    kind: PlacementKind
    entry: Entry | None = None
    data: bytes = b""
    download: Download | None = None


@dataclass(frozen=True)
class CopyPlan:
    placements: tuple[Placement, ...]
    dirs: tuple[str, ...]  # destination directories to have even when nothing is copied into them
    inputs: tuple[tuple[str, Entry], ...]  # the context entries read, named for the cache digest
    downloads: tuple[Download, ...]
    owner: tuple[int, int] | None  # --chown, resolved
    chmod: int | None


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _fail(instruction: ins.Copy | ins.Add, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{instruction.keyword} {reason}", op="build")


def parse_chmod(instruction: ins.Copy | ins.Add) -> int | None:
    if not instruction.chmod:
        return None
    if not _CHMOD.match(instruction.chmod):
        raise _fail(instruction, f"--chmod={instruction.chmod!r} is not an octal mode (e.g. 0755)")
    return int(instruction.chmod, 8)


def resolve_owner(instruction: ins.Copy | ins.Add, image: LayeredTree | None) -> tuple[int, int] | None:
    """--chown user[:group], names looked up in the image; a user alone gives its uid as the gid too."""
    if not instruction.chown:
        return None
    user, _, group = instruction.chown.partition(":")

    def text(path: str) -> str | None:
        found = image.resolve(path) if image is not None else None
        if found is None or not found.is_file:
            return None
        with open(found.host, encoding="utf-8", errors="replace") as handle:
            return handle.read(4 * 1024 * 1024)

    passwd, groups = text("etc/passwd"), text("etc/group")
    try:
        resolved = resolve_user(f"{user}:{group or 0}", passwd, groups) if group else resolve_user(user, passwd, None)
    except InvalidArgumentError as exc:
        raise _fail(instruction, f"--chown={instruction.chown}: {exc.message}") from exc
    return (resolved.uid, resolved.gid if group else resolved.uid)


def _destination(instruction: ins.Copy | ins.Add, workdir: str) -> tuple[str, bool]:
    raw = instruction.dest
    as_dir = raw.endswith("/") or raw == "." or raw.endswith("/.")
    path = raw if raw.startswith("/") else posixpath.join(workdir or "/", raw)
    return posixpath.normpath("/" + path).lstrip("/"), as_dir


def _real(image: LayeredTree | None, path: str, instruction: ins.Copy | ins.Add) -> tuple[str, bool]:
    """``path`` with the image's symbolic links on the way followed, and whether it is a directory now."""
    if image is None or not path:
        return path, not path
    parts = path.split("/")
    base = ""
    for index, part in enumerate(parts):
        candidate = f"{base}/{part}" if base else part
        found = image.resolve(candidate)
        if found is None:
            return "/".join([base, *parts[index:]]).lstrip("/"), False
        if not found.is_dir:
            if index == len(parts) - 1:
                return candidate, False
            raise _fail(instruction, f"cannot copy to {path!r}: {candidate!r} is not a directory in the image")
        base = found.path
    return base, True


def _sources(instruction: ins.Copy | ins.Add, source: LayeredTree, from_context: bool) -> list[tuple[str, Entry]]:
    """(name, entry) of every match; a context source that is absolute or uses ".." is refused."""
    matches: list[tuple[str, Entry]] = []
    for text in instruction.sources:
        if is_url(text):
            continue
        if from_context and text.startswith("/"):
            raise _fail(instruction, f"source {text!r} is an absolute path: sources are paths in the build context")
        if from_context and ".." in text.split("/"):
            raise _fail(instruction, f"source {text!r} uses '..': sources may not leave the build context")
        found = source.glob(text.lstrip("/"))
        if not found and not has_magic(text):
            where = "the build context (or excluded by .dockerignore)" if from_context else source.what
            raise _fail(instruction, f"source {text!r}: no such file or directory in {where}")
        magic = has_magic(text)
        for entry in found:
            name = entry.name if magic else posixpath.basename(posixpath.normpath("/" + text)) or entry.name
            matches.append((name, entry))
    return matches


def _excluded(rules: IgnoreRules | None, path: str) -> bool:
    return rules is not None and rules.excludes(path)


def _walk(tree: LayeredTree, top: Entry, rules: IgnoreRules | None) -> Iterator[tuple[str, Entry]]:
    prefix = len(top.path) + 1 if top.path else 0
    for entry in tree.walk(top):
        relative = entry.path[prefix:]
        if not _excluded(rules, relative):
            yield relative, entry


def kind_of(entry: Entry) -> PlacementKind | None:
    if entry.is_dir:
        return PlacementKind.DIR
    if entry.is_file:
        return PlacementKind.FILE
    if entry.is_symlink:
        return PlacementKind.SYMLINK
    return None  # sockets, FIFOs and devices are no file content


def plan_copy(instruction: ins.Copy | ins.Add, *, workdir: str, source: LayeredTree, from_context: bool,
              image: LayeredTree | None, downloads: tuple[Download, ...] = ()) -> CopyPlan:
    """Where every source goes. ``image`` is the stage so far (None: nothing yet); ``downloads`` are the
    instruction's URLs, fetched (without them, the plan leaves the URLs out: enough for a cache key)."""
    owner, chmod = resolve_owner(instruction, image), parse_chmod(instruction)
    urls = [text for text in instruction.sources if is_url(text)]
    if urls and isinstance(instruction, ins.Copy):
        raise _fail(instruction, f"does not download {urls[0]!r}: use ADD for URLs")
    if isinstance(instruction, ins.Add):
        _check_add(instruction, urls)
    matches = _sources(instruction, source, from_context)
    dest, as_dir = _destination(instruction, workdir)
    many = len(instruction.sources) + len(instruction.inline) > 1 or len(matches) > 1
    if many and not as_dir:
        raise _fail(instruction, f"has several sources, so its destination {instruction.dest!r} must be a directory "
                    "ending in /")
    real, exists_as_dir = _real(image, dest, instruction)
    planner = _Planner(instruction, source, real, as_dir or exists_as_dir)
    for name, entry in matches:
        planner.match(name, entry)
    for inline in instruction.inline:
        planner.add(inline.name, Placement("", PlacementKind.INLINE,
                                           data=inline.content.encode("utf-8", "surrogateescape")))
    for download in downloads:
        planner.add(download.name, Placement("", PlacementKind.DOWNLOAD, download=download))
    if matches and not planner.placements and not planner.dirs:
        raise _fail(instruction, "copies nothing: every source is excluded by --exclude")
    return CopyPlan(tuple(planner.placements), tuple(planner.dirs), tuple(planner.inputs), downloads, owner, chmod)


@dataclass
class _Planner:
    """Where each match of a COPY or ADD goes, under the real destination ``real``."""

    instruction: ins.Copy | ins.Add
    source: LayeredTree
    real: str
    into_dir: bool
    placements: list[Placement] = field(default_factory=list)
    inputs: list[tuple[str, Entry]] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        excludes = self.instruction.excludes
        self.rules = parse_ignore("\n".join(excludes), source="--exclude") if excludes else None
        self.pivoted = bool(getattr(self.instruction, "parents", False))

    def add(self, name: str, placement: Placement) -> None:
        """A file named ``name``: into the destination directory, or as the destination."""
        path = join(self.real, name) if self.into_dir else self.real
        self.placements.append(Placement(path, placement.kind, placement.entry, placement.data, placement.download))

    def match(self, name: str, entry: Entry) -> None:
        if entry.is_dir:
            target = join(self.real, _pivot(self.instruction, entry)) if self.pivoted else self.real
            self.dirs.append(target)
            for relative, child in _walk(self.source, entry, self.rules):
                kind = kind_of(child)
                if kind is not None:
                    self.placements.append(Placement(join(target, relative), kind, child))
                    self.inputs.append((f"{entry.path}\0{relative}", child))
            self.inputs.append((f"{entry.path}\0", entry))
            return
        kind = kind_of(entry)
        if _excluded(self.rules, entry.path) or kind is None:
            return
        self.inputs.append((f"{name}\0{entry.path}", entry))
        add = self.instruction
        if isinstance(add, ins.Add) and add.unpack is not False and entry.is_file and _is_archive(entry):
            self.dirs.append(self.real)
            self.placements.append(Placement(self.real, PlacementKind.ARCHIVE, entry))
        elif self.pivoted:
            self.placements.append(Placement(join(self.real, _pivot(self.instruction, entry)), kind, entry))
        else:
            self.add(name, Placement("", kind, entry))


def _is_archive(entry: Entry) -> bool:
    from isobox.builder.archives import archive_kind  # bz2, lzma and the unpacker: only for ADD

    return archive_kind(entry.host) is not None


def _check_add(instruction: ins.Add, urls: list[str]) -> None:
    for text in instruction.sources:
        if _GIT_URL.search(text) and (is_url(text) or "@" in text or "://" in text):
            raise _fail(instruction, f"of a Git repository ({text!r}) is not supported by isobox build: clone it "
                        "into the build context")
    if instruction.checksum and len(urls) != len(instruction.sources) + len(instruction.inline):
        raise _fail(instruction, "--checksum is only for http(s) sources")


def _pivot(instruction: ins.Copy | ins.Add, entry: Entry) -> str:
    """--parents: the source's path, from after a "/./" in its pattern if it has one."""
    for text in instruction.sources:
        head, sep, _tail = text.partition("/./")
        if sep and entry.path.startswith(head.strip("/") + "/"):
            return entry.path[len(head.strip("/")) + 1:]
    return entry.path


def join(base: str, name: str) -> str:
    return f"{base}/{name}".strip("/") if base else name.strip("/")
