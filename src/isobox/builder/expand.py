"""Variable expansion and word splitting with Docker's shell-word rules (the Dockerfile reference,
"Environment replacement"), written for isobox after BuildKit's frontend/dockerfile/shell behaviour.

    $VAR ${VAR}            the value, or "" when unset
    ${VAR:-word} ${VAR-word}   word when VAR is unset or empty (":-") / unset ("-")
    ${VAR:+word} ${VAR+word}   word when VAR is set and non-empty (":+") / set ("+"), else ""
    ${VAR:?msg} ${VAR?msg}     an error (msg) when VAR is unset or empty / unset
    ${VAR#pat} ${VAR##pat} ${VAR%pat} ${VAR%%pat}   shortest/longest prefix/suffix removed (* and ?)
    ${VAR/pat/repl} ${VAR//pat/repl}                first/every match replaced

``word`` may itself hold variables and quotes. Single quotes keep everything literal; double quotes
keep spaces but still expand ``$``; the escape character (``\\`` or the Dockerfile's ``# escape=``)
makes the next character literal and is dropped at the end of a word. Positional and special
parameters ($1, $@, $$ …) are never set in a Dockerfile and expand to "".

Differences kept on purpose: BuildKit's word splitting shares one buffer between nested ``${…}``
words, which can drop text before a ``${VAR:-word}`` in split words; isobox keeps it. A replacement
text is inserted literally (Go's regexp would read ``$1`` in it as a group).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from isobox.errors import InvalidArgumentError

__all__ = ["ExpansionError", "Lexer", "expand_heredoc", "expand_word", "expand_words"]

_SPECIAL_PARAMETERS = frozenset("@*#?-$!0")  # POSIX shell, 2.5.2 Special Parameters
_REGEX_SPECIALS = frozenset("[]{}.+()|^$")
_HEREDOC_SPACE = frozenset("\t\r ")


class ExpansionError(InvalidArgumentError):
    """A word could not be expanded: bad ${…} syntax, an unterminated quote, or ${VAR:?msg}."""


def expand_word(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """One word with variables expanded, quotes removed and escapes applied (spaces kept)."""
    return Lexer(escape).word(word, env)


def expand_words(text: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """``text`` expanded and split at unquoted whitespace (what EXPOSE and heredoc detection use)."""
    return Lexer(escape).words(text, env)


def expand_heredoc(text: str, env: Mapping[str, str]) -> str:
    """A heredoc body: variables expanded, quotes left alone (as a shell does inside <<EOF)."""
    return Lexer("\\", process_quotes=False).word(text, env)


@dataclass
class _Words:
    """Collects the words of a text as it is expanded (quoted text never splits)."""

    parts: list[str] = field(default_factory=list)
    buf: list[str] = field(default_factory=list)
    in_word: bool = False

    def char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.buf:
                self._flush()
        else:
            self.raw(ch)

    def text(self, text: str) -> None:
        for ch in text:
            self.char(ch)

    def raw(self, text: str) -> None:
        if text:
            self.buf.append(text)
        self.in_word = True  # an empty quoted string ("") adds nothing and makes no word of its own

    def _flush(self) -> None:
        self.parts.append("".join(self.buf))
        self.buf.clear()
        self.in_word = False

    def done(self) -> list[str]:
        if self.buf:
            self._flush()
        return self.parts


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch


class Lexer:
    """Expands one text against an environment. Options mirror what the Dockerfile parser needs:

    ``raw_quotes`` keeps quote characters in the result, ``raw_escapes`` keeps escape characters,
    ``skip_unset`` leaves references to unset variables as written, ``process_quotes=False`` treats
    quotes as ordinary characters (heredoc bodies).
    """

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset: bool = False, process_quotes: bool = True) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.process_quotes = process_quotes
        self._env: Mapping[str, str] = {}
        self._reader = _Reader("")

    def word(self, text: str, env: Mapping[str, str]) -> str:
        return self._run(text, env)[0]

    def words(self, text: str, env: Mapping[str, str]) -> list[str]:
        return self._run(text, env)[1]

    def _run(self, text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        self._env, self._reader = env, _Reader(text)
        try:
            return self._until("", self.raw_escapes)
        except ExpansionError as exc:
            raise ExpansionError(f"cannot expand {text!r}: {exc.message}", op="expand variables") from exc

    def _until(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Reads up to ``stop`` (consumed) or the end of the text when ``stop`` is ""."""
        result: list[str] = []
        words = _Words()
        reader = self._reader
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            while reader.peek():
                ch = reader.peek()
                if stop and ch == stop:
                    reader.next()
                    return "".join(result), words.done()
                special = self._special(ch)
                if special is not None:
                    piece = special()
                    result.append(piece)
                    # Expanded values split into words; quoted text and "<<" stay whole.
                    (words.text if ch == "$" else words.raw)(piece)
                    continue
                ch = reader.next()
                if ch == self.escape:
                    if self.raw_escapes:
                        words.raw(ch)
                        result.append(ch)
                    ch = reader.next()
                    if not ch:
                        break  # an escape at the very end is dropped
                    words.raw(ch)
                else:
                    words.char(ch)
                result.append(ch)
        finally:
            self.raw_escapes = saved
        if stop:
            raise ExpansionError(f"unexpected end of text while looking for matching {stop}")
        return "".join(result), words.done()

    def _special(self, ch: str) -> Callable[[], str] | None:
        if ch == "$":
            return self._dollar
        if ch == "<":
            return self._maybe_heredoc
        if self.process_quotes and ch == "'":
            return self._single_quoted
        if self.process_quotes and ch == '"':
            return self._double_quoted
        return None

    def _single_quoted(self) -> str:
        reader = self._reader
        opening = reader.next()
        out = [opening] if self.raw_quotes else []
        while True:
            ch = reader.next()
            if not ch:
                raise ExpansionError("unexpected end of text while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quoted(self) -> str:
        reader = self._reader
        opening = reader.next()
        out = [opening] if self.raw_quotes else []
        while True:
            ch = reader.peek()
            if not ch:
                raise ExpansionError("unexpected end of text while looking for matching double-quote")
            if ch == '"':
                reader.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            ch = reader.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                # Inside double quotes the escape only protects ", $ and itself (sh(1), Double Quotes).
                if reader.peek() == "":
                    continue
                if reader.peek() in ('"', "$", self.escape):
                    ch = reader.next()
            out.append(ch)

    def _maybe_heredoc(self) -> str:
        reader = self._reader
        reader.next()
        if reader.peek() != "<":
            return "<"
        reader.next()
        spaces = []
        while reader.peek() in _HEREDOC_SPACE:
            spaces.append(reader.next())
        return "<<" + "".join(spaces)

    def _name(self) -> str:
        reader = self._reader
        name: list[str] = []
        while reader.peek():
            ch = reader.peek()
            if not name and ch.isdecimal():
                while reader.peek().isdecimal():
                    name.append(reader.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMETERS:
                return reader.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(reader.next())
        return "".join(name)

    def _lookup(self, name: str) -> str | None:
        return self._env.get(name)

    def _dollar(self) -> str:
        reader = self._reader
        reader.next()
        if reader.peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value = self._lookup(name)
            if value is None:
                return "$" + name if self.skip_unset else ""
            return value
        reader.next()
        if reader.peek() == "":
            raise ExpansionError("syntax error: missing '}'")
        if reader.peek() in "{}:":
            raise ExpansionError("syntax error: bad substitution")
        name = self._name()
        op = reader.next()
        if op == "}":
            value = self._lookup(name)
            if value is None:
                return "${" + name + "}" if self.skip_unset else ""
            return value
        if op == "/":
            return self._replace(name)
        if op == ":":
            op2 = reader.next()
            if op2 not in ("-", "+", "?"):
                raise ExpansionError(f"unsupported modifier (:{op2}) in substitution")
            return self._modifier(name, op2, null_is_unset=True)
        if op in ("-", "+", "?", "#", "%"):
            return self._modifier(name, op, null_is_unset=False)
        if not op:
            raise ExpansionError("syntax error: missing '}'")
        raise ExpansionError(f"unsupported modifier ({op}) in substitution")

    def _modifier(self, name: str, op: str, *, null_is_unset: bool) -> str:
        word = self._closing("}", raw_escapes=op in "#%")
        value = self._lookup(name)
        if value is None and self.skip_unset:
            return "${" + name + (":" if null_is_unset else "") + op + word + "}"
        missing = value is None or (null_is_unset and value == "")
        if op == "-":
            return word if missing or value is None else value
        if op == "+":
            return "" if missing else word
        if op == "?":
            if value is None:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
            if missing:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(op)
        pattern = word[1:] if greedy else word
        if op == "#":
            return _trim_prefix(pattern, value or "", greedy)
        return _trim_suffix(pattern, value or "", greedy)

    def _replace(self, name: str) -> str:
        every = self._reader.peek() == "/"
        if every:
            self._reader.next()
        pattern = self._closing("/", raw_escapes=True)
        replacement = self._closing("}", raw_escapes=True)
        value = self._lookup(name)
        if value is None and self.skip_unset:
            return "${" + name + ("//" if every else "/") + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        if every:
            return regex.sub(lambda _match: replacement, value or "")
        return regex.sub(lambda _match: replacement, value or "", count=1)

    def _closing(self, stop: str, *, raw_escapes: bool) -> str:
        try:
            return self._until(stop, raw_escapes)[0]
        except ExpansionError as exc:
            if self._reader.peek() == "":
                missing = "'}'" if stop == "}" else "'/' in ${}"
                raise ExpansionError(f"syntax error: missing {missing}") from exc
            raise


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A ${VAR#pattern} glob as a regex: * any text, ? one character, \\* \\? \\\\ literal (no [...])."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    chars = iter(pattern)
    for ch in chars:
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = next(chars, "")
            if following in ("}", "/"):
                out.append(re.escape(following))  # only there to not end the ${…}
            elif following in ("*", "?", "\\"):
                out.append(re.escape(following))
            else:
                raise ExpansionError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{following}'")
        elif ch in _REGEX_SPECIALS:
            out.append("\\" + ch)
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).match(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    """The pattern read backwards, escape pairs kept in order (a\\*c → c\\*a)."""
    units: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            units.append(pattern[i:i + 2])
            i += 2
        else:
            units.append(pattern[i])
            i += 1
    return "".join(reversed(units))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex finds the leftmost match only: reverse both to find the shortest/longest suffix.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]
