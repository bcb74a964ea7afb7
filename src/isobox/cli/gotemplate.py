"""Go templates for isobox's ``--format`` and ``inspect -f``: the syntax Docker users script with.

    >>> parse("{{.Name}} is {{.State.Status}}").render({"Name": "web", "State": {"Status": "running"}})
    'web is running'

Why an interpreter of isobox's own: Docker's formats are Go's text/template, and no maintained Python
library implements it. The PyPI package ``go-template`` wraps a Go shared library and was abandoned in 2019;
Jinja2 has another syntax (``{{ x.y }}``, ``{% if %}``) and other semantics (no pipelines, other truth and
printing rules), so a Docker user's ``{{range .Mounts}}{{.Source}} {{end}}`` or
``{{json .Config}}`` would not work through it. This module, with its lexer (gotemplate_lex), parser
(gotemplate_parse), functions (gotemplate_funcs) and Go's printing rules (goprint), implements the part of
text/template that formats use, following Go's sources rule by rule:

- text and actions, ``{{- `` / `` -}}`` trimming, comments ``{{/* */}}``;
- fields ``.A.B`` on dicts (keys) and objects (attributes, properties, and methods, which may take
  arguments: ``{{.Label "com.example"}}``), ``.``, ``$``, variables (``$x := …``, ``$x = …``);
- pipelines ``a | b``, parenthesised pipelines, string, raw string, character, number, bool and nil literals;
- ``if``/``else if``/``else``, ``with``/``else with``/``else``, ``range`` (lists; dicts in sorted key order;
  ints, as Go 1.22; ``$i, $v :=``; ``else``; ``break`` and ``continue``);
- Go's builtins and Docker's functions (see gotemplate_funcs), an undefined function being a parse error.

Values follow Go's rules (see goprint): a dict key that is absent yields "no value", printed
``<no value>``; ``None`` is nil, printed ``<nil>``; a field an object lacks is an error ("can't evaluate
field X in type T"), as is a field of nil ("nil pointer evaluating …"). Errors are InvalidArgumentError
worded as Go's: ``template: :1:7: executing "" at <.Foo>: can't evaluate field Foo in type Row``.

Not supported: named templates (``define``, ``template``, ``block``), complex numbers, and the builtins
``call``, ``html``, ``js`` and ``urlquery``.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from isobox.cli import goprint
from isobox.cli.gotemplate_funcs import FUNCTIONS, MISSING, Function, FunctionError, check_argument, truth
from isobox.cli.gotemplate_nodes import (
    Action,
    Arg,
    Branch,
    Chain,
    Command,
    Dot,
    Field,
    Identifier,
    Literal,
    Nil,
    Node,
    Pipe,
    Text,
    Variable,
    position,
)
from isobox.cli.gotemplate_parse import parse_tree
from isobox.errors import InvalidArgumentError

__all__ = ["MISSING", "Template", "parse"]


def parse(text: str) -> Template:
    """The template ``text``; raises InvalidArgumentError naming the line, column and what was expected."""
    return Template(text, parse_tree(text, FUNCTIONS))


class Template:
    """A parsed template. Rendering does not change it, so one template serves every row."""

    def __init__(self, source: str, nodes: tuple[Node, ...]) -> None:
        self.source = source
        self.nodes = nodes

    def render(self, data: object, *, functions: Mapping[str, Function] = FUNCTIONS, keep_partial: bool = False) -> str:
        """The text of the template applied to ``data`` (Python dicts, lists, strings, numbers, booleans, None,
        and objects exposing attributes). ``functions`` replaces the function table (the table writer renders
        header rows with Docker's header functions); it must name the same functions. With ``keep_partial``,
        an error ends the output instead of raising (Docker prints a header row so, ignoring the error)."""
        execution = _Execution(self, functions)
        try:
            return execution.run(data)
        except InvalidArgumentError:
            if keep_partial:
                return "".join(execution.out)
            raise


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_NO_FINAL: Any = object()  # no value flows in from an earlier stage of the pipeline
_ABSENT = object()


def _is_plain_data(value: object) -> bool:
    return type(value).__module__ == "builtins" or isinstance(value, enum.Enum)


def _method(receiver: object, name: str) -> Any:
    """A method ``name`` of the receiver's own class, if it has one (Go looks for methods before fields and
    map keys). Builtin types offer none: {{.items}} on a dict is its key "items"."""
    if name.startswith("_") or _is_plain_data(receiver):
        return None
    return getattr(receiver, name) if inspect.isfunction(getattr(type(receiver), name, None)) else None


def _attribute(receiver: object, name: str) -> object:
    if name.startswith("_") or _is_plain_data(receiver) or isinstance(receiver, Mapping):
        return _ABSENT
    return getattr(receiver, name, _ABSENT)


class _Execution:
    """One rendering: the variable stack, the output, and the node being evaluated (for error messages)."""

    def __init__(self, template: Template, functions: Mapping[str, Function]) -> None:
        self.template = template
        self.functions = functions
        self.vars: list[list[Any]] = []  # [name, value], innermost last
        self.out: list[str] = []
        self.node: Node | Arg | Command | None = None

    def run(self, data: object) -> str:
        self.vars = [["$", data]]
        self.walk_list(data, self.template.nodes)
        return "".join(self.out)

    def error(self, message: str) -> InvalidArgumentError:
        if self.node is None:
            return InvalidArgumentError(f": {message}", op="template")
        where = position(self.template.source, self.node.pos)
        return InvalidArgumentError(f':{where}: executing "" at <{self.node}>: {message}', op="template")

    # -- statements --------------------------------------------------------------------------------------------

    def walk_list(self, dot: object, nodes: Sequence[Node]) -> None:
        for node in nodes:
            self.walk(dot, node)

    def walk(self, dot: object, node: Node) -> None:
        self.node = node
        if isinstance(node, Text):
            self.out.append(node.text)
        elif isinstance(node, Action):
            value = self.pipeline(dot, node.pipe)
            if not node.pipe.decl:  # an action that declares a variable prints nothing
                self.out.append("<no value>" if value is MISSING else goprint.sprint_value(value))
        elif isinstance(node, Branch):
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        else:
            raise _Break() if node.keyword == "break" else _Continue()

    def walk_if_or_with(self, dot: object, node: Branch) -> None:
        mark = len(self.vars)  # variables declared in the pipeline or body end at {{end}}
        try:
            value = self.pipeline(dot, node.pipe)
            if truth(value):
                self.walk_list(value if node.keyword == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk_list(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: object, node: Branch) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(dot, node.pipe)
            if not self.iterate(node, self.range_items(node, value)) and node.else_body is not None:
                self.walk_list(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def range_items(self, node: Branch, value: object) -> list[tuple[object, object]]:
        value = value.value if isinstance(value, enum.Enum) else value
        if value is MISSING or value is None:
            return []  # as Go ranges over a nil map
        if isinstance(value, list | tuple):
            return list(enumerate(value))
        if isinstance(value, Mapping):
            return [(key, value[key]) for key in goprint.sorted_keys(value)]
        if isinstance(value, int) and not isinstance(value, bool):  # Go 1.22: range over an int
            if len(node.pipe.decl) > 1:
                raise self.error(f"can't use {value} to iterate over more than one variable")
            return [(i, i) for i in range(value)]
        raise self.error(f"range can't iterate over {goprint.sprint_value(value)}")

    def iterate(self, node: Branch, items: list[tuple[object, object]]) -> bool:
        """Walk the body once per item; whether there was any item."""
        pipe = node.pipe
        declared = len(self.vars)  # the range's own variables are the last ones pushed
        try:
            for index, element in items:
                if pipe.is_assign:
                    names = [v.names[0] for v in pipe.decl]
                    values = [index, element] if len(names) > 1 else [element]
                    for name, value in zip(names, values, strict=True):
                        self.set_var(name, value)
                elif pipe.decl:
                    self.vars[declared - 1][1] = element
                    if len(pipe.decl) > 1:
                        self.vars[declared - 2][1] = index
                try:
                    self.walk_list(element, node.body)
                except _Continue:
                    pass
                finally:
                    del self.vars[declared:]
        except _Break:
            pass
        return bool(items)

    # -- variables ---------------------------------------------------------------------------------------------

    def var(self, name: str) -> object:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise self.error(f"undefined variable: {name}")

    def set_var(self, name: str, value: object) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise self.error(f"undefined variable: {name}")

    # -- expressions -------------------------------------------------------------------------------------------

    def pipeline(self, dot: object, pipe: Pipe) -> object:
        self.node = pipe
        value = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)  # each stage's value is the next one's last argument
        for variable in pipe.decl:
            if pipe.is_assign:
                self.set_var(variable.names[0], value)
            else:
                self.vars.append([variable.names[0], value])
        return value

    def command(self, dot: object, cmd: Command, final: object) -> object:
        first, args = cmd.args[0], cmd.args[1:]
        self.node = first
        if isinstance(first, Field):
            return self.field_chain(dot, dot, first.names, args, final)
        if isinstance(first, Chain):
            return self.field_chain(dot, self.arg(dot, first.node), first.names, args, final)
        if isinstance(first, Identifier):
            return self.call_function(dot, first, args, final, cmd)
        if isinstance(first, Variable):
            value = self.var(first.names[0])
            if len(first.names) > 1:
                return self.field_chain(dot, value, first.names[1:], args, final)
            self.not_a_function(cmd, final)
            return value
        self.not_a_function(cmd, final)
        if isinstance(first, Pipe):
            return self.pipeline(dot, first)
        if isinstance(first, Nil):
            raise self.error("nil is not a command")
        return dot if isinstance(first, Dot) else first.value

    def not_a_function(self, cmd: Command, final: object) -> None:
        if len(cmd.args) > 1 or final is not _NO_FINAL:
            raise self.error(f"can't give argument to non-function {cmd.args[0]}")

    def field_chain(
        self, dot: object, receiver: object, names: Sequence[str], args: Sequence[Arg], final: object
    ) -> object:
        for name in names[:-1]:
            receiver = self.field(dot, name, receiver, (), _NO_FINAL)
        return self.field(dot, names[-1], receiver, args, final)

    def field(self, dot: object, name: str, receiver: object, args: Sequence[Arg], final: object) -> object:
        if receiver is MISSING:
            return MISSING
        if receiver is None:
            raise self.error(f"nil pointer evaluating interface {{}}.{name}")
        method = _method(receiver, name)
        if method is not None:
            return self.call_method(dot, method, name, args, final)
        has_args = bool(args) or final is not _NO_FINAL
        if isinstance(receiver, Mapping):
            if has_args:
                raise self.error(f"{name} is not a method but has arguments")
            return receiver.get(name, MISSING)
        value = _attribute(receiver, name)
        if value is _ABSENT:
            raise self.error(f"can't evaluate field {name} in type {goprint.type_name(receiver)}")
        if has_args:
            raise self.error(f"{name} has arguments but cannot be invoked as function")
        return value

    def arguments(self, dot: object, args: Sequence[Arg], final: object) -> list[object]:
        values = [self.arg(dot, arg) for arg in args]
        return values if final is _NO_FINAL else [*values, final]

    def call_method(self, dot: object, method: Any, name: str, args: Sequence[Arg], final: object) -> object:
        values = [None if v is MISSING else v for v in self.arguments(dot, args, final)]
        try:
            inspect.signature(method).bind(*values)
        except TypeError:
            want = len(inspect.signature(method).parameters)
            raise self.error(f"wrong number of args for {name}: want {want} got {len(values)}") from None
        return method(*values)

    def call_function(
        self, dot: object, ident: Identifier, args: Sequence[Arg], final: object, origin: Command | Identifier
    ) -> object:
        """Call a function; a failure inside it is reported at ``origin``, the whole command, as Go does."""
        self.node = ident
        name = ident.name
        function = self.functions[name]
        problem = function.arity_error(name, len(args) + (final is not _NO_FINAL))
        if problem:
            raise self.error(problem)
        if function.short_circuit:  # and, or: stop at the first value that decides
            value: object = MISSING
            for arg in args:
                value = self.arg(dot, arg)
                if truth(value) == (name == "or"):
                    return value
            return value if final is _NO_FINAL else final
        values = []
        for i, value in enumerate(self.arguments(dot, args, final)):
            checked, refusal = check_argument(function.param(i), value)
            if refusal:
                raise self.error(refusal)
            values.append(checked)
        try:
            return function.call(*values)
        except FunctionError as exc:
            self.node = origin
            raise self.error(f"error calling {name}: {exc}") from exc

    def arg(self, dot: object, node: Arg) -> object:
        """The value of one argument of a command."""
        self.node = node
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Nil):
            return MISSING  # Go's untyped nil: nil to an interface{} parameter, "no value" to a raw one
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Field):
            return self.field_chain(dot, dot, node.names, (), _NO_FINAL)
        if isinstance(node, Variable):
            value = self.var(node.names[0])
            return self.field_chain(dot, value, node.names[1:], (), _NO_FINAL) if len(node.names) > 1 else value
        if isinstance(node, Pipe):
            return self.pipeline(dot, node)
        if isinstance(node, Identifier):
            return self.call_function(dot, node, (), _NO_FINAL, node)
        return self.field_chain(dot, self.arg(dot, node.node), node.names, (), _NO_FINAL)
