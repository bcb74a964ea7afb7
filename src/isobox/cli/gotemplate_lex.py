"""The lexer of isobox's Go templates: the source cut into text and the tokens of each ``{{ action }}``.

It follows Go's text/template/parse/lex.go rule by rule, because users write templates for Go: ``{{- `` and
`` -}}`` trim the white space (space, tab, CR, LF) beside them and need a space next to the dash (so
``{{-3}}`` is the number -3); a comment ``{{/* … */}}`` must touch its delimiters; an identifier must end at a
space, one of ``. , | : ( )``, or the closing ``}}``; newlines may appear inside an action. Complex numbers
are not read. A lexing error ends the token list with an ERROR token, which the parser reports when it
reaches it, as Go's does.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from isobox.cli.goprint import quote

SPACE_CHARS = " \t\r\n"
_TERMINATORS = frozenset(".,|:()}")  # '}' stands for the first character of the right delimiter


class Tok(enum.Enum):
    TEXT = "text"
    LEFT = "{{"
    RIGHT = "}}"
    SPACE = "space"
    FIELD = "field"
    IDENTIFIER = "identifier"
    VARIABLE = "variable"
    DOT = "."
    STRING = "string"
    RAW_STRING = "raw string"
    CHAR_CONSTANT = "character constant"
    NUMBER = "number"
    BOOL = "bool"
    NIL = "nil"
    PIPE = "|"
    LEFT_PAREN = "("
    RIGHT_PAREN = ")"
    DECLARE = ":="
    ASSIGN = "="
    CHAR = "char"  # any other printable ASCII character; ',' separates range variables
    EOF = "EOF"
    ERROR = "error"
    # keywords
    BLOCK = "block"
    BREAK = "break"
    CONTINUE = "continue"
    DEFINE = "define"
    ELSE = "else"
    END = "end"
    IF = "if"
    RANGE = "range"
    TEMPLATE = "template"
    WITH = "with"


_KEYWORD_TOKENS = (Tok.BLOCK, Tok.BREAK, Tok.CONTINUE, Tok.DEFINE, Tok.ELSE, Tok.END, Tok.IF, Tok.NIL, Tok.RANGE,
                   Tok.TEMPLATE, Tok.WITH)  # fmt: skip
KEYWORDS = {t.value: t for t in _KEYWORD_TOKENS}


@dataclass(frozen=True)
class Token:
    kind: Tok
    text: str
    pos: int  # offset of its first character in the source


def describe(code: str) -> str:
    """A character as Go's %#U writes it: U+0023 '#'."""
    return f"U+{ord(code):04X} '{code}'" if code.isprintable() else f"U+{ord(code):04X}"


def is_alphanumeric(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def lex(source: str) -> list[Token]:
    """All tokens of ``source``, ending with EOF or ERROR."""
    return _Lexer(source).run()


_State = Callable[[], "_State | None"]


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0  # next character to read
        self.start = 0  # first character of the pending token
        self.paren_depth = 0
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        state: _State | None = self._text
        while state is not None:
            state = state()
        return self.tokens

    # -- helpers -----------------------------------------------------------------------------------------------

    def _emit(self, kind: Tok) -> None:
        self.tokens.append(Token(kind, self.src[self.start : self.pos], self.start))
        self.start = self.pos

    def _error(self, message: str) -> None:
        self.tokens.append(Token(Tok.ERROR, message, self.start))

    def _peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.src[i] if i < len(self.src) else ""

    def _at_right_delim(self) -> tuple[bool, bool]:
        """Whether the input continues with '}}' or with the trim form ' -}}' (returned as the second value)."""
        if self.src.startswith("}}", self.pos):
            return True, False
        space = self._peek()
        if space and space in SPACE_CHARS and self._peek(1) == "-" and self.src.startswith("}}", self.pos + 2):
            return True, True
        return False, False

    def _skip_leading_space(self) -> None:
        while self._peek() and self._peek() in SPACE_CHARS:
            self.pos += 1
        self.start = self.pos

    def _at_terminator(self) -> bool:
        ch = self._peek()
        return not ch or ch in SPACE_CHARS or ch in _TERMINATORS

    # -- states ------------------------------------------------------------------------------------------------

    def _text(self) -> _State | None:
        left = self.src.find("{{", self.pos)
        if left < 0:
            self.pos = len(self.src)
            if self.pos > self.start:
                self._emit(Tok.TEXT)
            self._emit(Tok.EOF)
            return None
        self.pos = left
        trimmed_end = left
        if self.src[left + 2 : left + 3] == "-" and self.src[left + 3 : left + 4] in tuple(SPACE_CHARS):
            trimmed_end = self.start + len(self.src[self.start : left].rstrip(SPACE_CHARS))
        if trimmed_end > self.start:
            self.tokens.append(Token(Tok.TEXT, self.src[self.start : trimmed_end], self.start))
        self.start = left
        return self._left_delim

    def _left_delim(self) -> _State | None:
        self.pos += 2
        trim = self._peek() == "-" and self._peek(1) in tuple(SPACE_CHARS)
        after_marker = 2 if trim else 0
        if self.src.startswith("/*", self.pos + after_marker):
            self.pos += after_marker
            self.start = self.pos
            return self._comment
        self._emit(Tok.LEFT)
        self.pos += after_marker
        self.start = self.pos
        self.paren_depth = 0
        return self._inside_action

    def _comment(self) -> _State | None:
        end = self.src.find("*/", self.pos + 2)
        if end < 0:
            self._error("unclosed comment")
            return None
        self.pos = end + 2
        delim, trim = self._at_right_delim()
        if not delim:
            self._error("comment ends before closing delimiter")
            return None
        self.pos += 4 if trim else 2
        self.start = self.pos
        if trim:
            self._skip_leading_space()
        return self._text

    def _right_delim(self) -> _State | None:
        _, trim = self._at_right_delim()
        if trim:
            self.pos += 2
            self.start = self.pos
        self.pos += 2
        self._emit(Tok.RIGHT)
        if trim:
            self._skip_leading_space()
        return self._text

    def _inside_action(self) -> _State | None:
        delim, _ = self._at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self._right_delim
            self._error("unclosed left paren")
            return None
        ch = self._peek()
        if not ch:
            self._error("unclosed action")
            return None
        if ch in SPACE_CHARS:
            return self._space
        self.pos += 1
        single = {"|": Tok.PIPE, "=": Tok.ASSIGN}
        if ch in single:
            self._emit(single[ch])
        elif ch == ":":
            if self._peek() != "=":
                self._error("expected :=")
                return None
            self.pos += 1
            self._emit(Tok.DECLARE)
        elif ch == '"':
            return self._quote
        elif ch == "`":
            return self._raw_quote
        elif ch == "'":
            return self._char_constant
        elif ch == "$":
            return self._field_or_variable(Tok.VARIABLE)
        elif ch == "." and self._peek() and not self._peek().isdigit():
            return self._field_or_variable(Tok.FIELD)
        elif ch in "+-." or ch.isdigit():
            self.pos -= 1
            return self._number
        elif is_alphanumeric(ch):
            self.pos -= 1
            return self._identifier
        else:
            return self._paren_or_char(ch)
        return self._inside_action

    def _paren_or_char(self, ch: str) -> _State | None:
        if ch == "(":
            self._emit(Tok.LEFT_PAREN)
            self.paren_depth += 1
        elif ch == ")":
            self._emit(Tok.RIGHT_PAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self._error(f"unexpected right paren {describe(ch)}")
                return None
        elif ch.isascii() and ch.isprintable():
            self._emit(Tok.CHAR)
        else:
            self._error(f"unrecognized character in action: {describe(ch)}")
            return None
        return self._inside_action

    def _space(self) -> _State | None:
        spaces = 0
        while self._peek() and self._peek() in SPACE_CHARS:
            self.pos += 1
            spaces += 1
        # A space that begins the trim marker of ' -}}' belongs to the delimiter, not to this run.
        if self._peek() == "-" and self.src.startswith("}}", self.pos + 1):
            self.pos -= 1
            if spaces == 1:
                return self._right_delim
        self._emit(Tok.SPACE)
        return self._inside_action

    def _identifier(self) -> _State | None:
        while self._peek() and is_alphanumeric(self._peek()):
            self.pos += 1
        if not self._at_terminator():
            self._error(f"bad character {describe(self._peek())}")
            return None
        word = self.src[self.start : self.pos]
        if word in KEYWORDS:
            self._emit(KEYWORDS[word])
        elif word in ("true", "false"):
            self._emit(Tok.BOOL)
        else:
            self._emit(Tok.IDENTIFIER)
        return self._inside_action

    def _field_or_variable(self, kind: Tok) -> _State | None:
        if self._at_terminator():  # a lone '.' is dot; a lone '$' is the variable $
            self._emit(Tok.DOT if kind is Tok.FIELD else kind)
            return self._inside_action
        while self._peek() and is_alphanumeric(self._peek()):
            self.pos += 1
        if not self._at_terminator():
            self._error(f"bad character {describe(self._peek())}")
            return None
        self._emit(kind)
        return self._inside_action

    def _quote(self) -> _State | None:
        while True:
            ch = self._peek()
            self.pos += 1
            if ch == "\\" and self._peek() not in ("", "\n"):
                self.pos += 1
            elif ch in ("", "\n", "\\"):
                self._error("unterminated quoted string")
                return None
            elif ch == '"':
                self._emit(Tok.STRING)
                return self._inside_action

    def _raw_quote(self) -> _State | None:
        end = self.src.find("`", self.pos)
        if end < 0:
            self._error("unterminated raw quoted string")
            return None
        self.pos = end + 1
        self._emit(Tok.RAW_STRING)
        return self._inside_action

    def _char_constant(self) -> _State | None:
        while True:
            ch = self._peek()
            self.pos += 1
            if ch == "\\" and self._peek() not in ("", "\n"):
                self.pos += 1
            elif ch in ("", "\n", "\\"):
                self._error("unterminated character constant")
                return None
            elif ch == "'":
                self._emit(Tok.CHAR_CONSTANT)
                return self._inside_action

    def _number(self) -> _State | None:
        digits = "0123456789_"
        if self._peek() in ("+", "-"):
            self.pos += 1
        if self._peek() == "0" and self._peek(1) in ("x", "X", "o", "O", "b", "B"):
            digits = "0123456789abcdefABCDEF_" if self._peek(1) in "xX" else digits
            self.pos += 2
        self._accept_run(digits)
        if self._peek() == ".":
            self.pos += 1
            self._accept_run(digits)
        if self._peek() and self._peek() in "eEpP":
            self.pos += 1
            if self._peek() in ("+", "-"):
                self.pos += 1
            self._accept_run("0123456789_")
        if self._peek() == "i" or (self._peek() and is_alphanumeric(self._peek())) or self._peek() in ("+", "-"):
            self.pos += 1
            self._error(f"bad number syntax: {quote(self.src[self.start:self.pos])}")
            return None
        self._emit(Tok.NUMBER)
        return self._inside_action

    def _accept_run(self, valid: str) -> None:
        while self._peek() and self._peek() in valid:
            self.pos += 1
