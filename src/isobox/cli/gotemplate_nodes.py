"""The parse tree of isobox's Go templates: frozen nodes, printed as Go prints them in error messages.

Each node keeps its offset in the source, for the line and column of errors; ``str(node)`` is the node as
Go's parse package writes it back (``<.Foo>`` and ``<index .Labels "a">`` in execution errors).
"""

from __future__ import annotations

from dataclasses import dataclass

from isobox.errors import InvalidArgumentError


@dataclass(frozen=True)
class Text:
    pos: int
    text: str


@dataclass(frozen=True)
class Dot:
    pos: int

    def __str__(self) -> str:
        return "."


@dataclass(frozen=True)
class Nil:
    pos: int

    def __str__(self) -> str:
        return "nil"


@dataclass(frozen=True)
class Literal:
    """A boolean, number, character or string constant; ``source`` is how it was written."""

    pos: int
    value: bool | int | float | str
    source: str

    def __str__(self) -> str:
        return self.source


@dataclass(frozen=True)
class Field:
    pos: int
    names: tuple[str, ...]  # .A.B is ("A", "B")

    def __str__(self) -> str:
        return "".join("." + name for name in self.names)


@dataclass(frozen=True)
class Variable:
    pos: int
    names: tuple[str, ...]  # $x.A is ("$x", "A")

    def __str__(self) -> str:
        return ".".join(self.names)


@dataclass(frozen=True)
class Identifier:
    pos: int
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Chain:
    """Fields taken from a term that is not a field or variable: (pipeline).A.B."""

    pos: int
    node: Arg
    names: tuple[str, ...]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, Pipe) else str(self.node)
        return inner + "".join("." + name for name in self.names)


@dataclass(frozen=True)
class Command:
    pos: int
    args: tuple[Arg, ...]

    def __str__(self) -> str:
        return " ".join(f"({arg})" if isinstance(arg, Pipe) else str(arg) for arg in self.args)


@dataclass(frozen=True)
class Pipe:
    pos: int
    decl: tuple[Variable, ...]
    is_assign: bool
    cmds: tuple[Command, ...]

    def __str__(self) -> str:
        head = ""
        if self.decl:
            head = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return head + " | ".join(str(c) for c in self.cmds)


Arg = Dot | Nil | Literal | Field | Variable | Identifier | Chain | Pipe


@dataclass(frozen=True)
class Action:
    pos: int
    pipe: Pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(frozen=True)
class Branch:
    """An if, with or range: ``keyword`` is one of those three words."""

    pos: int
    keyword: str
    pipe: Pipe
    body: tuple[Node, ...]
    else_body: tuple[Node, ...] | None

    def __str__(self) -> str:
        return "{{" + self.keyword + " " + str(self.pipe) + "}}"


@dataclass(frozen=True)
class LoopJump:
    """{{break}} or {{continue}}."""

    pos: int
    keyword: str

    def __str__(self) -> str:
        return "{{" + self.keyword + "}}"


Node = Text | Action | Branch | LoopJump


@dataclass(frozen=True)
class Delimiter:
    """An {{end}} or {{else}} met while reading a list: it ends the list, and never reaches the tree."""

    pos: int
    keyword: str

    def __str__(self) -> str:
        return "{{" + self.keyword + "}}"


# -- errors ----------------------------------------------------------------------------------------------------


def position(source: str, pos: int) -> str:
    """``line:column`` of an offset, as Go's ErrorContext writes it (column in bytes, from 0)."""
    line_start = source.rfind("\n", 0, pos) + 1
    return f"{source.count(chr(10), 0, pos) + 1}:{len(source[line_start:pos].encode())}"


def template_error(source: str, pos: int, message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f":{position(source, pos)}: {message}", op="template")


