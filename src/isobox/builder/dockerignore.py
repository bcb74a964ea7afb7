""".dockerignore: which files of the build context the build leaves out.

The rules are Docker's (the Dockerfile reference ".dockerignore file"; moby/patternmatcher and its
ignorefile reader), written anew for isobox:

- One pattern per line; a line starting with ``#`` is a comment; surrounding whitespace is dropped.
- Patterns are cleaned like Go's filepath.Clean (``a//b/../c`` → ``a/c``) and a leading ``/`` is
  dropped: patterns are relative to the context root.
- Go filepath.Match syntax per path element: ``*`` (no ``/``), ``?``, ``[a-z]``, ``[^a-z]``, ``\\`` to
  escape; ``**`` matches any number of directories (``**/x``, ``x/**``, ``a/**/b``).
- ``!pattern`` is an exception. Lines apply in order and the last matching line wins.
- A pattern that matches a directory matches everything below it.
- ``must_walk(dir)`` tells whether an excluded directory must still be walked because an exception
  may re-include something below it.

Which file applies: ``<Dockerfile name>.dockerignore`` next to the Dockerfile, when it exists, takes
precedence over the context's ``.dockerignore`` (BuildKit's frontend/dockerui reads it first).

The Dockerfile and the ignore file themselves: the builder always reads them, whatever the patterns
say (Docker's client adds exceptions for both when it sends the context, and BuildKit reads the
Dockerfile from a source of its own), but when the patterns exclude them they are not part of the
context that COPY and ADD see (moby's builder/remotecontext removes them again,
``removeDockerfile``). ``IgnoreRules.excludes`` answers for that context; ``load_ignore_rules`` and
the Dockerfile reader are not subject to it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from isobox.errors import InvalidArgumentError

__all__ = ["IgnorePattern", "IgnoreRules", "clean_path", "find_ignore_file", "load_ignore_rules", "parse_ignore"]

CONTEXT_IGNORE_FILE = ".dockerignore"
_BOM = "\ufeff"


def clean_path(path: str) -> str:
    """Go's path.Clean: the shortest equivalent path ("" → ".", "a/./b/../c" → "a/c", "/.." → "/")."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    text = "/".join(parts)
    return "/" + text if rooted else text or "."


class _Kind(enum.Enum):
    EXACT = enum.auto()
    PREFIX = enum.auto()  # "dir/**": everything starting with "dir/"
    SUFFIX = enum.auto()  # "**/name": "name" or anything ending in "/name"
    REGEX = enum.auto()


def _bracket(pattern: str, pos: int) -> tuple[str, int]:
    """The Go character class starting after the "[" at ``pos`` - 1, as a regex class, and the
    position after its "]"; raises ValueError where filepath.Match says ErrBadPattern.
    """
    negate = pattern.startswith("^", pos)
    pos += negate
    ranges: list[str] = []
    while True:
        if pattern.startswith("]", pos) and ranges:
            return "[" + ("^" if negate else "") + "".join(ranges) + "]", pos + 1
        low, pos = _class_char(pattern, pos)
        high = low
        if pattern.startswith("-", pos):
            high, pos = _class_char(pattern, pos + 1)
        if high < low:
            raise ValueError(f"range {low}-{high} is out of order")
        ranges.append(re.escape(low) + ("-" + re.escape(high) if high != low else ""))


def _class_char(pattern: str, pos: int) -> tuple[str, int]:
    if pos >= len(pattern) or pattern[pos] in "-]":
        raise ValueError("unterminated or malformed [...] class")
    if pattern[pos] == "\\":
        pos += 1
        if pos >= len(pattern):
            raise ValueError("unterminated [...] class")
    return pattern[pos], pos + 1


def _compile(pattern: str) -> tuple[_Kind, re.Pattern[str] | None]:
    """The pattern as Docker matches it: exact, prefix, suffix or a regex over the whole path."""
    out = ["^"]
    kind = _Kind.EXACT
    pos = 0
    first = True
    while pos < len(pattern):
        ch = pattern[pos]
        pos += 1
        if ch == "*" and pattern.startswith("*", pos):
            pos += 1
            if pattern.startswith("/", pos):
                pos += 1  # "**/" is "**": the "/" is optional
            if pos >= len(pattern):
                kind, text = (_Kind.PREFIX, "") if kind == _Kind.EXACT else (_Kind.REGEX, ".*")
                out.append(text)
            else:
                out.append("(.*/)?")
                kind = _Kind.REGEX
            if first:
                kind = _Kind.SUFFIX
        elif ch in "*?":
            out.append("[^/]*" if ch == "*" else "[^/]")
            kind = _Kind.REGEX
        elif ch == "\\":
            if pos >= len(pattern):
                raise ValueError("a trailing \\ escapes nothing")
            out.append(re.escape(pattern[pos]))
            pos += 1
            kind = _Kind.REGEX
        elif ch == "[":
            text, pos = _bracket(pattern, pos)
            out.append(text)
            kind = _Kind.REGEX
        else:
            out.append(re.escape(ch))
        first = False
    return kind, re.compile("".join(out) + "$") if kind == _Kind.REGEX else None


@dataclass(frozen=True)
class IgnorePattern:
    text: str  # cleaned, without its "!"
    exception: bool
    line: int
    kind: _Kind
    regex: re.Pattern[str] | None

    def matches(self, path: str) -> bool:
        if self.kind == _Kind.EXACT:
            return path == self.text
        if self.kind == _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind == _Kind.SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None

    def matches_or_parent(self, path: str) -> bool:
        if self.matches(path):
            return True
        parts = path.split("/")[:-1]
        return any(self.matches("/".join(parts[:depth])) for depth in range(1, len(parts) + 1))


@dataclass(frozen=True)
class IgnoreRules:
    patterns: tuple[IgnorePattern, ...] = ()
    source: str = ""  # the ignore file they came from ("" = none)

    @property
    def has_exceptions(self) -> bool:
        return any(pattern.exception for pattern in self.patterns)

    def excludes(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, "/"-separated) is left out of the context."""
        path = clean_path(path).lstrip("/") or "."
        if path == ".":
            return False  # the context root itself is never excluded
        excluded = False
        for pattern in self.patterns:
            # An inclusion cannot change an excluded path, nor an exception an included one.
            if pattern.exception != excluded:
                continue
            if pattern.matches_or_parent(path):
                excluded = not pattern.exception
        return excluded

    def must_walk(self, directory: str) -> bool:
        """Whether a walk must enter ``directory``: it is not excluded, or an exception may still
        re-include something below it (so skipping it would lose files).
        """
        if not self.excludes(directory):
            return True
        parts = clean_path(directory).lstrip("/").split("/")
        return any(_may_match_below(pattern.text.split("/"), parts) for pattern in self.patterns if pattern.exception)


def _may_match_below(elements: list[str], parts: list[str]) -> bool:
    """Whether a pattern of ``elements`` can match a path strictly below the directory ``parts``."""
    for element, part in zip(elements, parts, strict=False):
        if "**" in element:
            return True  # any depth: assume it can
        _kind, regex = _compile(element)
        if not (part == element if regex is None else regex.match(part)):
            return False
    return len(elements) > len(parts)


def _pattern_line(line: str) -> str | None:
    """What Docker's ignore-file reader keeps of one line (None for comments and blank lines)."""
    if line.startswith("#"):
        return None
    text = line.strip()
    if not text:
        return None
    exception = text.startswith("!")
    if exception:
        text = text[1:].strip()
    if text:
        text = clean_path(text)
        if len(text) > 1 and text.startswith("/"):
            text = text[1:]
    return ("!" if exception else "") + text


def parse_ignore(text: str, *, source: str = CONTEXT_IGNORE_FILE) -> IgnoreRules:
    """Rules from an ignore file's text; raises InvalidArgumentError naming the file and line."""
    patterns: list[IgnorePattern] = []
    for number, line in enumerate(text.removeprefix(_BOM).split("\n"), start=1):
        kept = _pattern_line(line)
        if kept is None:
            continue
        kept = clean_path(kept)
        exception = kept.startswith("!")
        body = kept[1:] if exception else kept
        if not body:
            raise InvalidArgumentError(f"{source}:{number}: illegal exclusion pattern: \"!\"",
                                       op="read ignore file", path=source)
        try:
            kind, regex = _compile(body)
        except (ValueError, re.error) as exc:
            raise InvalidArgumentError(f"{source}:{number}: bad pattern {line.strip()!r}: {exc}",
                                       op="read ignore file", path=source) from exc
        patterns.append(IgnorePattern(body, exception, number, kind, regex))
    return IgnoreRules(tuple(patterns), source)


def find_ignore_file(context_dir: Path, dockerfile: Path | None = None) -> Path | None:
    """``<Dockerfile>.dockerignore`` next to the Dockerfile if it exists, else the context's
    ``.dockerignore`` if it exists, else None.
    """
    candidates = [dockerfile.with_name(dockerfile.name + CONTEXT_IGNORE_FILE)] if dockerfile else []
    candidates.append(context_dir / CONTEXT_IGNORE_FILE)
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def load_ignore_rules(context_dir: Path, dockerfile: Path | None = None) -> IgnoreRules:
    """The rules of the ignore file that applies (no rules when there is none)."""
    found = find_ignore_file(context_dir, dockerfile)
    if found is None:
        return IgnoreRules()
    try:
        text = found.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {found}: {exc.strerror}", op="read ignore file",
                                   path=str(found)) from exc
    return parse_ignore(text, source=str(found))
