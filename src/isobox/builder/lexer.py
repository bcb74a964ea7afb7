"""Physical lines → logical instruction lines: parser directives, comments, continuations, heredocs.

The rules follow Docker's Dockerfile parser (BuildKit frontend/dockerfile/parser, the Dockerfile
reference "Parser directives", "Format" and "Here-Documents"):

- Parser directives (``# syntax=``, ``# escape=``, ``# check=``; names case-insensitive) are only read
  before anything else: the first line that is not a known directive (an instruction, a blank line,
  another comment, an unknown ``# key=value``) ends them; each may appear once.
- A line whose first non-blank character is ``#`` is a comment. Inside a continued instruction,
  comment lines and blank lines are skipped (blank ones earn a warning, as Docker prints).
- A line ending in the escape character (optionally followed by spaces or tabs) continues on the next
  line; the escape character is removed and the lines are joined as they are (no space added). An
  escaped escape character at the end (``\\\\``) does not continue the line.
- RUN, COPY and ADD (also under ONBUILD) in shell/word form may carry heredocs: ``<<EOF``, ``<<-EOF``
  (leading tabs stripped, also before the terminator), ``<<"EOF"``/``<<'EOF'`` (no expansion),
  ``3<<EOF`` (a file descriptor), several on one line. Their bodies follow the instruction in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from isobox.builder.expand import ExpansionError, Lexer
from isobox.builder.source import DockerfileError
from isobox.builder.words import NotStringArrayError, parse_json_array, split_command

__all__ = ["Directives", "Heredoc", "LogicalLine", "ParseWarning", "Scan", "parse_heredoc_word", "scan"]

_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[ \t\n\f\r]*=[ \t\n\f\r]*(.+?)[ \t\n\f\r]*\Z")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_WORD = re.compile(r"([0-9]*)<<(-?)[ \t\n\f\r]*([^<]*)\Z")
_HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})
_BOM = "\ufeff"


@dataclass(frozen=True)
class Directives:
    """The parser directives at the top of a Dockerfile ("" when absent; escape defaults to \\)."""

    syntax: str = ""
    escape: str = "\\"
    check: str = ""


@dataclass(frozen=True)
class Heredoc:
    """One here-document: ``content`` is every line up to the terminator, each with its newline."""

    name: str
    content: str
    expand: bool = True  # False when any part of the delimiter word was quoted
    chomp: bool = False  # <<- : leading tabs are stripped from every line
    fd: int = 0  # the N of N<<EOF, 0 when not given

    @property
    def body(self) -> str:
        """The content as the command or file receives it (leading tabs gone for <<-)."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


@dataclass(frozen=True)
class LogicalLine:
    text: str
    start_line: int
    end_line: int  # the last physical line, heredoc terminators included
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class ParseWarning:
    line: int
    message: str


@dataclass(frozen=True)
class Scan:
    directives: Directives
    lines: tuple[LogicalLine, ...]
    warnings: tuple[ParseWarning, ...]


class _DirectiveReader:
    """Reads directives until the first line that is not one (then stays done)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.done = False
        self.values: dict[str, str] = {}

    def offer(self, text: str, line: int) -> bool:
        if self.done:
            return False
        match = _DIRECTIVE.match(text[1:].lstrip()) if text.startswith("#") else None
        name = match.group(1).lower() if match else ""
        if match is None or name not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        if name in self.values:
            raise DockerfileError(f"only one {name} parser directive can be used", path=self.path, line=line)
        value = match.group(2)
        if name == "escape" and value not in ("\\", "`"):
            raise DockerfileError(f"invalid escape token {value!r}: use ` or \\", path=self.path, line=line)
        self.values[name] = value
        return True

    def directives(self) -> Directives:
        return Directives(self.values.get("syntax", ""), self.values.get("escape", "\\"), self.values.get("check", ""))


def _physical_lines(text: str) -> list[str]:
    """Lines split at \\n only, each keeping its line ending (the last one may have none)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _is_comment(raw: str) -> bool:
    return raw.lstrip().startswith("#")


def _continues(token: str, escape: str) -> tuple[str, bool]:
    """(token without its continuation mark, whether the instruction continues on the next line)."""
    stripped = token.rstrip(" \t")
    if stripped.endswith(escape) and (len(stripped) == 1 or stripped[-2] != escape):
        return stripped[:-1], True
    return token, False


class _Scanner:
    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.raw = _physical_lines(text.removeprefix(_BOM))
        self.index = 0  # lines consumed so far == the 1-based number of the last line read
        self.directives = _DirectiveReader(path)
        self.escape = "\\"
        self.warnings: list[ParseWarning] = []

    def _take(self) -> str:
        raw = self.raw[self.index]
        self.index += 1
        return raw

    def run(self) -> Scan:
        lines: list[LogicalLine] = []
        while self.index < len(self.raw):
            raw = self._take().rstrip("\r\n").lstrip()
            if self.directives.offer(raw, self.index):
                self.escape = self.directives.directives().escape
                continue
            start = self.index
            token, more = _continues("" if raw.startswith("#") else raw, self.escape)
            if not more and not token:
                continue
            text = self._join(token, more)
            heredocs = self._heredocs(text, start) if "<<" in text and self._may_hold_heredocs(text) else ()
            lines.append(LogicalLine(text, start, self.index, heredocs))
        return Scan(self.directives.directives(), tuple(lines), tuple(self.warnings))

    def _join(self, first: str, more: bool) -> str:
        parts = [first]
        blank_seen = False
        while more and self.index < len(self.raw):
            raw = self._take()
            if _is_comment(raw):
                continue
            token = raw.rstrip("\r\n")
            if not token.lstrip():
                blank_seen = True
                continue
            token, more = _continues(token, self.escape)
            parts.append(token)
        text = "".join(parts)
        if blank_seen:
            self.warnings.append(ParseWarning(
                self.index, f"empty continuation line found in: {text.strip()} "
                "(Docker warns that empty continuation lines will become errors)"))
        return text

    def _may_hold_heredocs(self, text: str) -> bool:
        name, _flags, rest = split_command(text, self.escape)
        if name.lower() == "onbuild":
            return bool(rest) and self._may_hold_heredocs(rest)
        if name.lower() not in _HEREDOC_INSTRUCTIONS:
            return False
        try:
            return parse_json_array(rest) is None
        except NotStringArrayError:
            return False  # reported when the instruction is decoded

    def _heredocs(self, text: str, start: int) -> tuple[Heredoc, ...]:
        found: list[Heredoc] = []
        for word in _heredoc_candidates(text, self.path, start):
            heredoc = parse_heredoc_word(word, path=self.path, line=start)
            if heredoc is not None:
                found.append(self._body(heredoc, start))
        return tuple(found)

    def _body(self, heredoc: Heredoc, start: int) -> Heredoc:
        content: list[str] = []
        while self.index < len(self.raw):
            raw = self._take()
            candidate = raw.rstrip("\r\n")
            if heredoc.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == heredoc.name:
                return Heredoc(heredoc.name, "".join(content), heredoc.expand, heredoc.chomp, heredoc.fd)
            content.append(raw)
        raise DockerfileError(f"unterminated heredoc {heredoc.name!r} (no line {heredoc.name!r} follows)",
                              path=self.path, line=start, end_line=self.index)


def _heredoc_candidates(text: str, path: str, line: int) -> list[str]:
    """The words of an instruction line, quotes kept, so that a quoted "<<EOF" is no heredoc."""
    lexer = Lexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        return lexer.words(text, {})
    except ExpansionError:
        return []  # an unbalanced quote elsewhere on the line: the shell will complain, not the parser


def parse_heredoc_word(word: str, *, path: str = "Dockerfile", line: int = 0) -> Heredoc | None:
    """The heredoc a word such as ``<<EOF``, ``<<-'EOF'`` or ``3<<EOF`` starts (no content), or None."""
    match = _HEREDOC_WORD.match(word)
    if match is None or not match.group(3):
        return None
    rest = match.group(3)
    try:
        plain = Lexer("\\", skip_unset=True).words(rest, {})
        quoted = Lexer("\\", raw_quotes=True, skip_unset=True).words(rest, {})
    except ExpansionError as exc:
        raise DockerfileError(f"invalid heredoc delimiter {word!r}: {exc.message}", path=path, line=line) from exc
    if len(plain) != 1 or len(quoted) != 1:
        return None
    # Any quote in the delimiter word turns expansion off, as in sh(1).
    expand = _quotes(plain[0]) == _quotes(quoted[0])
    return Heredoc(plain[0], "", expand, match.group(2) == "-", int(match.group(1) or 0))


def _quotes(text: str) -> int:
    return text.count("'") + text.count('"')


def scan(text: str, *, path: str = "Dockerfile") -> Scan:
    """Splits a Dockerfile's text into its directives and logical instruction lines."""
    return _Scanner(text, path).run()
