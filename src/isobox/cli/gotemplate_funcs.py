"""The functions a template may call: Go's builtins (text/template/funcs.go) and Docker's (docker/cli
templates/templates.go), with Go's rules for truth, comparison, indexing and slicing.

Go types every parameter. Three kinds matter here (``Param``): builtins such as ``and``, ``index`` or ``eq``
take the raw value, so a missing map key stays "no value"; ``print``, ``printf`` and ``json`` take
``interface{}``, so a missing key arrives as nil; Docker's string functions take strings (``join`` a list of
strings, ``pad`` and ``truncate`` ints too) and anything else is refused before the call.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from isobox.cli import gojson, goprint


class _Missing:
    """Go's invalid reflect.Value: what a missing map key yields. Printed as <no value>; false; nil to functions."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


class FunctionError(Exception):
    """A function refused its arguments; execution stops with 'error calling NAME: message'."""


class Param(enum.Enum):
    RAW = "reflect.Value"
    ANY = "interface {}"
    STRING = "string"
    INT = "int"
    STRINGS = "[]string"


@dataclass(frozen=True)
class Function:
    call: Callable[..., object]
    params: tuple[Param, ...]
    variadic: Param | None = None  # the type of further arguments, if any are allowed
    short_circuit: bool = False  # and, or: arguments evaluated left to right until the result is known

    def arity_error(self, name: str, count: int) -> str | None:
        fixed = len(self.params)
        if self.variadic is not None:
            return None if count >= fixed else f"wrong number of args for {name}: want at least {fixed} got {count}"
        return None if count == fixed else f"wrong number of args for {name}: want {fixed} got {count}"

    def param(self, i: int) -> Param:
        if i < len(self.params):
            return self.params[i]
        assert self.variadic is not None
        return self.variadic


def check_argument(param: Param, value: object) -> tuple[object, str | None]:
    """The value a parameter of this kind receives, or why Go would refuse it."""
    if param is Param.RAW:
        return value, None
    if param is Param.ANY:
        return (None if value is MISSING else value), None
    if value is MISSING:
        return value, f"invalid value; expected {param.value}"
    plain = value.value if isinstance(value, enum.Enum) else value
    ok = {
        Param.STRING: isinstance(plain, str),
        Param.INT: isinstance(plain, int) and not isinstance(plain, bool),
        Param.STRINGS: isinstance(plain, list | tuple) and all(isinstance(item, str) for item in plain),
    }[param]
    if not ok:
        return value, f"wrong type for value; expected {param.value}; got {goprint.type_name(value)}"
    return plain, None


# -- truth and comparison --------------------------------------------------------------------------------------


def truth(value: object) -> bool:
    """Go's emptiness test for if, with, and, or, not: false, 0, nil, and empty strings, lists and maps."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is MISSING or value is None:
        return False
    if isinstance(value, bool | int | float):
        return value != 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True  # a struct is always true


def _basic_kind(value: object) -> str | None:
    if isinstance(value, enum.Enum):
        value = value.value
    for kind, types in (("bool", bool), ("int", int), ("float64", float), ("string", str)):
        if isinstance(value, types):
            return kind
    return None


def _is_nil(value: object) -> bool:
    return value is None or value is MISSING


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def _eq(first: object, *others: object) -> bool:
    if not others:
        raise FunctionError("missing argument for comparison")
    kind = _basic_kind(first)
    for other in others:
        other_kind = _basic_kind(other)
        if kind != other_kind:
            if not _is_nil(first) and not _is_nil(other):
                raise FunctionError(
                    f"incompatible types for comparison: {goprint.type_name(first)} and {goprint.type_name(other)}"
                )
            continue
        if kind is not None:
            if _plain(first) == _plain(other):
                return True
            continue
        if _is_nil(first) or _is_nil(other):
            if _is_nil(first) == _is_nil(other):
                return True
            continue
        if isinstance(first, list | tuple | Mapping) or isinstance(other, list | tuple | Mapping):
            raise FunctionError(f"non-comparable type {goprint.sprint_value(other)}: {goprint.type_name(other)}")
        if first == other:
            return True
    return False


def _lt(first: object, second: object) -> bool:
    kinds = (_basic_kind(first), _basic_kind(second))
    if None in kinds or "bool" in kinds:
        raise FunctionError("invalid type for comparison")
    if kinds[0] != kinds[1]:
        raise FunctionError("incompatible types for comparison")
    low, high = _plain(first), _plain(second)
    assert isinstance(low, int | float | str) and isinstance(high, int | float | str)
    return bool(low < high)  # type: ignore[operator]  # both numbers, or both strings, as checked above


def _le(first: object, second: object) -> bool:
    return _lt(first, second) or _eq(first, second)


# -- index, slice, len -----------------------------------------------------------------------------------------


def _position(index: object, cap: int) -> int:
    index = _plain(index)
    if _is_nil(index):
        raise FunctionError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise FunctionError(f"cannot index slice/array with type {goprint.type_name(index)}")
    if not 0 <= index <= cap:
        raise FunctionError(f"index out of range: {index}")
    return index


def _index(item: object, *indexes: object) -> object:
    """index x 1 2 is x[1][2]; a missing map key gives 'no value', as a key missing from a map[string]any does."""
    if _is_nil(item):
        raise FunctionError("index of untyped nil")
    for index in indexes:
        item = _plain(item)
        if item is None:
            raise FunctionError("index of nil pointer")
        if isinstance(item, str | list | tuple):
            sequence: bytes | list[object] | tuple[object, ...] = item.encode() if isinstance(item, str) else item
            position = _position(index, len(sequence))
            if position == len(sequence):
                raise FunctionError(f"index out of range: {position}")
            item = sequence[position]
        elif isinstance(item, Mapping):
            key = _plain(index)
            if _is_nil(key):
                raise FunctionError("value is nil; should be of type string")
            if not isinstance(key, str):
                raise FunctionError(f"value has type {goprint.type_name(key)}; should be string")
            item = item.get(key, MISSING)
        else:
            raise FunctionError(f"can't index item of type {goprint.type_name(item)}")
    return item


def _slice(item: object, *indexes: object) -> object:
    """slice x 1 2 is x[1:2]; strings are cut by bytes, as in Go."""
    item = _plain(item)
    if _is_nil(item):
        raise FunctionError("slice of untyped nil")
    if len(indexes) > 3:
        raise FunctionError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str) and len(indexes) == 3:
        raise FunctionError("cannot 3-index slice a string")
    if not isinstance(item, str | list | tuple):
        raise FunctionError(f"can't slice item of type {goprint.type_name(item)}")
    sequence = item.encode() if isinstance(item, str) else item
    bounds = [0, len(sequence), len(sequence)]
    for i, index in enumerate(indexes):
        bounds[i] = _position(index, len(sequence))
    for low, high in ((bounds[0], bounds[1]), (bounds[1], bounds[2])):
        if low > high:
            raise FunctionError(f"invalid slice index: {low} > {high}")
    part = sequence[bounds[0] : bounds[1]]
    return part.decode("utf-8", "replace") if isinstance(part, bytes) else list(part)


def _length(item: object) -> int:
    item = _plain(item)
    if item is MISSING:
        raise FunctionError("len of untyped nil")
    if item is None:
        raise FunctionError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode())  # Go counts bytes
    if isinstance(item, list | tuple | Mapping):
        return len(item)
    raise FunctionError(f"len of type {goprint.type_name(item)}")


# -- Docker's functions ----------------------------------------------------------------------------------------


def _json(value: object) -> str:
    try:
        return gojson.to_json(value)
    except gojson.JSONError as exc:
        if exc.unsupported_value:
            return ""  # Docker ignores the encoder's error: NaN prints nothing
        raise FunctionError(str(exc)) from exc


def _map_runes(text: str, convert: Callable[[str], str]) -> str:
    """Go's strings.ToUpper/ToLower map each rune to one rune; a character whose mapping is longer stays."""
    return "".join(mapped if len(mapped := convert(ch)) == 1 else ch for ch in text)


def _is_separator(ch: str) -> bool:
    """strings.Title's word boundaries: ASCII other than letters, digits and '_'; beyond ASCII, white space."""
    if ch.isascii():
        return not (ch.isalnum() or ch == "_")
    if ch.isalpha() or unicodedata.category(ch) == "Nd":
        return False
    return ch.isspace()


def _title(text: str) -> str:
    """strings.Title: the first letter of each word in title case, the rest untouched."""
    out: list[str] = []
    previous = " "
    for ch in text:
        out.append(_map_runes(ch, str.title) if _is_separator(previous) else ch)
        previous = ch
    return "".join(out)


def _split(text: str, separator: str) -> list[str]:
    return list(text) if separator == "" else text.split(separator)


def _pad(text: str, before: int, after: int) -> str:
    """Docker's pad: spaces on both sides of a text that is not empty."""
    if before < 0 or after < 0:
        raise FunctionError("strings: negative Repeat count")
    return " " * before + text + " " * after if text else text


def _truncate(text: str, length: int) -> str:
    """Docker's truncate: the first ``length`` bytes (a character cut in two is dropped)."""
    data = text.encode()
    if length < 0:
        raise FunctionError(f"slice bounds out of range [:{length}]")
    return text if len(data) < length else data[:length].decode("utf-8", "ignore")


R, A, S, N = Param.RAW, Param.ANY, Param.STRING, Param.INT

FUNCTIONS: dict[str, Function] = {
    # Go's builtins (call, html, js and urlquery are left out: formats do not use them)
    "and": Function(lambda *args: args[-1], (R,), R, short_circuit=True),
    "or": Function(lambda *args: args[-1], (R,), R, short_circuit=True),
    "not": Function(lambda value: not truth(value), (R,)),
    "len": Function(_length, (R,)),
    "index": Function(_index, (R,), R),
    "slice": Function(_slice, (R,), R),
    "eq": Function(_eq, (R,), R),
    "ne": Function(lambda a, b: not _eq(a, b), (R, R)),
    "lt": Function(_lt, (R, R)),
    "le": Function(_le, (R, R)),
    "gt": Function(lambda a, b: not _le(a, b), (R, R)),
    "ge": Function(lambda a, b: not _lt(a, b), (R, R)),
    "print": Function(goprint.sprint, (), A),
    "printf": Function(goprint.sprintf, (S,), A),
    "println": Function(goprint.sprintln, (), A),
    # Docker's (templates.basicFunctions)
    "json": Function(_json, (A,)),
    "join": Function(lambda items, sep: sep.join(items), (Param.STRINGS, S)),
    "split": Function(_split, (S, S)),
    "title": Function(_title, (S,)),
    "lower": Function(lambda text: _map_runes(text, str.lower), (S,)),
    "upper": Function(lambda text: _map_runes(text, str.upper), (S,)),
    "pad": Function(_pad, (S, N, N)),
    "truncate": Function(_truncate, (S, N)),
}

# Docker renders a table's header row with the same template over the column titles, with these functions
# replaced so that the titles come out whole (templates.HeaderFunctions); pad is kept, to keep the alignment.
HEADER_FUNCTIONS: dict[str, Function] = {
    **FUNCTIONS,
    **{name: Function(lambda title: title, (R,)) for name in ("json", "title", "lower", "upper")},
    **{name: Function(lambda title, _: title, (R, R)) for name in ("split", "join", "truncate")},
}
