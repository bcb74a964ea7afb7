"""Splitting one logical Dockerfile line: the instruction word, its --flags, its arguments.

These are the parser-level splits (quotes and escapes are kept in the words; the expansion step
removes them later), following what Docker's parser does for each argument style:

- ``split_command``: ``NAME [--flag …] rest``; flags are the leading words that start with ``--``
  (quotes removed, escape applied), up to the first other word or a bare ``--``.
- ``parse_words``: whitespace-separated words with quoted runs kept whole (ENV, LABEL, ARG).
- ``parse_json_array``: the JSON exec form (``["a", "b"]``), or None when the text is not JSON.
- ``split_whitespace``: plain whitespace splitting (FROM, EXPOSE, COPY/ADD/VOLUME word form).
"""

from __future__ import annotations

import json
import re

__all__ = ["NotStringArrayError", "parse_json_array", "parse_words", "split_command", "split_whitespace"]

# Go's parser splits on [\t\v\f\r ]: a logical line never holds a newline.
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


class NotStringArrayError(ValueError):
    """A JSON array holds something other than strings (Docker refuses these instead of falling back)."""


def split_whitespace(text: str) -> list[str]:
    return [word for word in _WHITESPACE.split(text) if word] if text else []


def split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    """(instruction word as written, flag words, the rest of the line stripped)."""
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, rest.strip()


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading ``--flag[=value]`` words of ``line`` and what follows them."""
    flags: list[str] = []
    pos = 0
    while True:
        while pos < len(line) and line[pos].isspace():
            pos += 1
        if not line.startswith("--", pos):
            return line[pos:], flags
        word, blank_ok, pos = _flag_word(line, pos, escape)
        if word == "--":
            return line[pos:], flags  # "--" ends the flags, as in POSIX utility syntax
        if word or blank_ok:
            flags.append(word)
        if pos >= len(line):
            return "", flags


def _flag_word(line: str, pos: int, escape: str) -> tuple[str, bool, int]:
    """One flag word starting at ``pos``: (text, whether it held quotes, position after it)."""
    out: list[str] = []
    quote = ""
    blank_ok = False
    while pos < len(line):
        ch = line[pos]
        if not quote and ch.isspace():
            break
        pos += 1
        if not quote and ch in "'\"":
            quote, blank_ok = ch, True
            continue
        if quote and ch == quote:
            quote = ""
            continue
        if ch == escape:
            if pos >= len(line):
                break  # an escape at the end of the line is dropped
            ch = line[pos]
            pos += 1
        out.append(ch)
    return "".join(out), blank_ok, pos


def parse_words(text: str, escape: str) -> list[str]:
    """Whitespace-separated words; quoted runs stay in one word and keep their quotes and escapes."""
    words: list[str] = []
    out: list[str] = []
    in_word = blank_ok = False
    quote = ""
    pos = 0
    while pos < len(text):
        ch = text[pos]
        pos += 1
        if not in_word:
            if ch.isspace():
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":  # nothing can be escaped inside single quotes
                if pos >= len(text):
                    quote = ""
                    continue
                out.append(ch)
                ch = text[pos]
                pos += 1
            out.append(ch)
            continue
        if ch.isspace():
            if blank_ok or out:
                words.append("".join(out))
            out.clear()
            in_word = blank_ok = False
            continue
        if ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape:
            if pos >= len(text):
                continue  # an escape at the end of the text is dropped
            out.append(ch)
            ch = text[pos]
            pos += 1
        out.append(ch)
    if in_word and (blank_ok or out):
        words.append("".join(out))
    return words


def parse_json_array(text: str) -> list[str] | None:
    """The exec form ``["a", "b"]`` as a list, or None when ``text`` is not a JSON array.

    Raises NotStringArrayError for a JSON array with a non-string element (Docker refuses it
    rather than reading the line as a shell command).
    """
    text = text.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise NotStringArrayError("when using JSON array syntax, arrays must be comprised of strings only")
    return value
