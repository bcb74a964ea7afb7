"""The parser of isobox's Go templates: tokens to a tree of frozen nodes, with Go's grammar and messages.

Grammar (Go's text/template/parse/parse.go, the part isobox supports):

    list      := (text | action)*
    action    := '{{' (control | pipeline) '}}'
    control   := if pipeline '}}' list ('{{else}}' list | '{{else if' … )? '{{end}}'   (and with, range)
               | break | continue
    pipeline  := declarations? command ('|' command)*
    declarations := $x ':=' | $x '=' | $i ',' $v ':='            (two variables only in range)
    command   := operand (space operand)*
    operand   := term ('.' Field)*
    term      := literal | function | '.' | '.Field' | '$var' | '(' pipeline ')'

Errors are InvalidArgumentError, worded as Go words them and placed by line and column (the column counts
bytes from the start of the line, from 0, as Go's execution errors do): ``template: :1:12: unexpected "}" in
operand``. Functions must exist when the template is parsed, as in Go; variables must be declared before use.
``define``, ``template`` and ``block`` (named templates) are refused: a --format is one template.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from isobox.cli.goprint import quote
from isobox.cli.gotemplate_lex import Tok, Token, lex
from isobox.cli.gotemplate_nodes import (
    Action,
    Arg,
    Branch,
    Chain,
    Command,
    Delimiter,
    Dot,
    Field,
    Identifier,
    Literal,
    LoopJump,
    Nil,
    Node,
    Pipe,
    Text,
    Variable,
    template_error,
)
from isobox.errors import InvalidArgumentError


def _describe(token: Token) -> str:
    """A token as Go's parser names it in 'unexpected …' messages."""
    if token.kind is Tok.EOF:
        return "EOF"
    if token.kind.value == token.text and token.text.isalpha():  # a keyword
        return f"<{token.text}>"
    if len(token.text) > 10:
        return quote(token.text[:10]) + "..."
    return quote(token.text)


# -- the parser ------------------------------------------------------------------------------------------------

_OPERAND_START = frozenset(
    {Tok.BOOL, Tok.CHAR_CONSTANT, Tok.DOT, Tok.FIELD, Tok.IDENTIFIER, Tok.NUMBER, Tok.NIL, Tok.RAW_STRING,
     Tok.STRING, Tok.VARIABLE, Tok.LEFT_PAREN}
)  # fmt: skip


def parse_tree(source: str, functions: Collection[str]) -> tuple[Node, ...]:
    """The tree of ``source``; raises InvalidArgumentError at the first error."""
    return _Parser(source, functions).parse()


class _Parser:
    def __init__(self, source: str, functions: Collection[str]) -> None:
        self.source = source
        self.tokens = lex(source)
        self.i = 0
        self.functions = functions
        self.vars = ["$"]
        self.range_depth = 0

    # -- token access ------------------------------------------------------------------------------------------

    def peek(self) -> Token:
        return self.tokens[min(self.i, len(self.tokens) - 1)]  # past the end, the last token (EOF or ERROR) repeats

    def next(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def backup(self) -> None:
        self.i -= 1

    def next_non_space(self) -> Token:
        token = self.next()
        while token.kind is Tok.SPACE:
            token = self.next()
        return token

    def peek_non_space(self) -> Token:
        while self.peek().kind is Tok.SPACE:
            self.i += 1
        return self.peek()

    def error(self, pos: int, message: str) -> InvalidArgumentError:
        return template_error(self.source, pos, message)

    def unexpected(self, token: Token, context: str) -> InvalidArgumentError:
        if token.kind is Tok.ERROR:
            return self.error(token.pos, token.text)
        return self.error(token.pos, f"unexpected {_describe(token)} in {context}")

    def expect(self, kind: Tok, context: str) -> Token:
        token = self.next_non_space()
        if token.kind is not kind:
            raise self.unexpected(token, context)
        return token

    # -- lists and actions -------------------------------------------------------------------------------------

    def parse(self) -> tuple[Node, ...]:
        nodes: list[Node] = []
        while self.peek().kind is not Tok.EOF:
            node = self.text_or_action()
            if isinstance(node, Delimiter):
                raise self.error(node.pos, f"unexpected {node}")
            nodes.append(node)
        return tuple(nodes)

    def item_list(self) -> tuple[tuple[Node, ...], Delimiter]:
        nodes: list[Node] = []
        while self.peek_non_space().kind is not Tok.EOF:
            node = self.text_or_action()
            if isinstance(node, Delimiter):
                return tuple(nodes), node
            nodes.append(node)
        raise self.error(len(self.source), "unexpected EOF")

    def text_or_action(self) -> Node | Delimiter:
        token = self.next_non_space()
        if token.kind is Tok.TEXT:
            return Text(token.pos, token.text)
        if token.kind is Tok.LEFT:
            return self.action()
        raise self.unexpected(token, "input")

    def action(self) -> Node | Delimiter:
        token = self.next_non_space()
        kind = token.kind
        if kind in (Tok.BREAK, Tok.CONTINUE):
            if (after := self.next_non_space()).kind is not Tok.RIGHT:
                raise self.unexpected(after, "{{" + token.text + "}}")
            if self.range_depth == 0:
                raise self.error(token.pos, "{{" + token.text + "}} outside {{range}}")
            return LoopJump(token.pos, token.text)
        if kind is Tok.ELSE:
            following = self.peek_non_space()
            if following.kind in (Tok.IF, Tok.WITH):  # else if / else with: the if or with stays pending
                return Delimiter(token.pos, "else")
            self.expect(Tok.RIGHT, "else")
            return Delimiter(token.pos, "else")
        if kind is Tok.END:
            self.expect(Tok.RIGHT, "end")
            return Delimiter(token.pos, "end")
        if kind in (Tok.IF, Tok.WITH, Tok.RANGE):
            return self.control(token)
        if kind in (Tok.DEFINE, Tok.TEMPLATE, Tok.BLOCK):
            raise self.error(token.pos, "{{" + token.text + "}} is not supported: a format is a single template")
        self.backup()
        return Action(self.peek().pos, self.pipeline("command", Tok.RIGHT))

    def control(self, keyword: Token) -> Branch:
        context = keyword.text
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, Tok.RIGHT)
            self.range_depth += context == "range"
            body, delimiter = self.item_list()
            self.range_depth -= context == "range"
            else_body: tuple[Node, ...] | None = None
            if delimiter.keyword == "else":
                following = self.peek()
                if context in ("if", "with") and following.kind.value == context:
                    # {{else if x}} is {{else}}{{if x}}…{{end}}, whose {{end}} closes both.
                    else_body = (self.control(self.next()),)
                else:
                    else_body, delimiter = self.item_list()
                    if delimiter.keyword != "end":
                        raise self.error(delimiter.pos, f"expected end; found {delimiter}")
            return Branch(pipe.pos, context, pipe, body, else_body)
        finally:
            del self.vars[mark:]

    # -- pipelines ---------------------------------------------------------------------------------------------

    def pipeline(self, context: str, end: Tok) -> Pipe:
        pos = self.peek_non_space().pos
        decl, is_assign = self.declarations(context)
        cmds: list[Command] = []
        while True:
            token = self.next_non_space()
            if token.kind is end:
                if not cmds:
                    raise self.error(token.pos, f"missing value for {context}")
                for stage, cmd in enumerate(cmds[1:], start=2):
                    if isinstance(cmd.args[0], Dot | Nil | Literal):
                        raise self.error(cmd.pos, f"non executable command in pipeline stage {stage}")
                return Pipe(pos, tuple(decl), is_assign, tuple(cmds))
            if token.kind not in _OPERAND_START:
                raise self.unexpected(token, context)
            self.backup()
            cmds.append(self.command())

    def declarations(self, context: str) -> tuple[list[Variable], bool]:
        decl: list[Variable] = []
        while True:
            save = self.i
            variable = self.next_non_space()
            if variable.kind is not Tok.VARIABLE:
                self.i = save
                return decl, False
            after = self.next_non_space()
            if after.kind in (Tok.DECLARE, Tok.ASSIGN):
                if after.kind is Tok.ASSIGN and variable.text not in self.vars:
                    raise self.error(variable.pos, f"undefined variable {quote(variable.text)}")
                decl.append(Variable(variable.pos, (variable.text,)))
                self.vars.append(variable.text)
                return decl, after.kind is Tok.ASSIGN
            if after.kind is Tok.CHAR and after.text == ",":
                decl.append(Variable(variable.pos, (variable.text,)))
                self.vars.append(variable.text)
                if context == "range" and len(decl) < 2:
                    if self.peek_non_space().kind in (Tok.VARIABLE, Tok.RIGHT, Tok.RIGHT_PAREN):
                        continue
                    raise self.error(after.pos, "range can only initialize variables")
                raise self.error(after.pos, f"too many declarations in {context}")
            self.i = save
            return decl, False

    def command(self) -> Command:
        pos = self.peek_non_space().pos
        args: list[Arg] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            token = self.next()
            if token.kind is Tok.SPACE:
                continue
            if token.kind in (Tok.RIGHT, Tok.RIGHT_PAREN):
                self.backup()
            elif token.kind is not Tok.PIPE:
                raise self.unexpected(token, "operand")
            break
        if not args:
            raise self.error(pos, "empty command")
        return Command(pos, tuple(args))

    def operand(self) -> Arg | None:
        node = self.term()
        if node is None or self.peek().kind is not Tok.FIELD:
            return node
        names: list[str] = []
        while self.peek().kind is Tok.FIELD:
            names.append(self.next().text[1:])
        if isinstance(node, Field):
            return Field(node.pos, node.names + tuple(names))
        if isinstance(node, Variable):
            return Variable(node.pos, node.names + tuple(names))
        if isinstance(node, Dot | Nil | Literal):
            raise self.error(node.pos, f"unexpected . after term {quote(str(node))}")
        return Chain(node.pos, node, tuple(names))

    def term(self) -> Arg | None:
        token = self.next_non_space()
        kind, text, pos = token.kind, token.text, token.pos
        if kind is Tok.IDENTIFIER:
            if text not in self.functions:
                raise self.error(pos, f"function {quote(text)} not defined")
            return Identifier(pos, text)
        if kind is Tok.DOT:
            return Dot(pos)
        if kind is Tok.NIL:
            return Nil(pos)
        if kind is Tok.VARIABLE:
            if text not in self.vars:
                raise self.error(pos, f"undefined variable {quote(text)}")
            return Variable(pos, (text,))
        if kind is Tok.FIELD:
            return Field(pos, (text[1:],))
        if kind is Tok.BOOL:
            return Literal(pos, text == "true", text)
        if kind in (Tok.NUMBER, Tok.CHAR_CONSTANT):
            return Literal(pos, self.number(token), text)
        if kind in (Tok.STRING, Tok.RAW_STRING):
            return Literal(pos, self.unquote(token), text)
        if kind is Tok.LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", Tok.RIGHT_PAREN)
        self.backup()
        return None

    # -- literals ----------------------------------------------------------------------------------------------

    def number(self, token: Token) -> int | float:
        """A constant as Go's idealConstant types it: a character is its code; a hex integer, or digits without
        '.', 'e' or 'p', is an int; anything else a float64."""
        text = token.text
        try:
            if token.kind is Tok.CHAR_CONSTANT:
                value = _unescape(text[1:-1], "'")
                if len(value) != 1:
                    raise ValueError(text)
                return ord(value)
            body = text.lstrip("+-").replace("_", "")
            negative = text.startswith("-")
            if re.fullmatch(r"0[xX][0-9a-fA-F]+|0[oObB]?[0-7]*|[1-9][0-9]*|0[bB][01]+", body):
                base = 8 if re.fullmatch(r"0[0-7]+", body) else 0
                number = int(body, base)
                return -number if negative else number
            number_f = float.fromhex(body) if body[:2] in ("0x", "0X") else float(body)
            return -number_f if negative else number_f
        except ValueError:
            raise self.error(token.pos, f"bad number syntax: {quote(text)}") from None

    def unquote(self, token: Token) -> str:
        if token.kind is Tok.RAW_STRING:
            return token.text[1:-1].replace("\r", "")
        try:
            return _unescape(token.text[1:-1], '"')
        except ValueError as exc:
            raise self.error(token.pos, f"invalid syntax in {token.text}: {exc}") from None


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unescape(body: str, quote_char: str) -> str:
    """Go's escapes inside a quoted string or character: \\n \\t \\\\ \\" (or \\'), \\xHH and octal \\ooo (bytes),
    \\uHHHH and \\UHHHHHHHH (code points)."""
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        code = body[i + 1 : i + 2]
        if code in _ESCAPES or code == quote_char:
            out += _ESCAPES.get(code, code).encode()
            i += 2
        elif code == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", body[i + 2 : i + 4]):
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif code in ("u", "U"):
            size = 4 if code == "u" else 8
            hexits = body[i + 2 : i + 2 + size]
            if not re.fullmatch(f"[0-9a-fA-F]{{{size}}}", hexits) or int(hexits, 16) > 0x10FFFF:
                raise ValueError(f"bad escape \\{code}{hexits}")
            out += chr(int(hexits, 16)).encode("utf-8", "surrogatepass")
            i += len(hexits) + 2
        elif re.fullmatch(r"[0-3][0-7]{2}", body[i + 1 : i + 4]):
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        else:
            raise ValueError(f"bad escape \\{code}")
    return out.decode("utf-8", "replace")
