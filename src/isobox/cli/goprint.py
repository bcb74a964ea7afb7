"""How Go prints values, for isobox's Go templates: fmt's ``%v``, ``Sprint`` and ``Sprintf``, and strconv.Quote.

A Docker user's template prints what the Go program would print, so the rules are Go's (package fmt,
https://pkg.go.dev/fmt), applied to the Python values isobox's documents hold (gojson has encoding/json's):

    Python value                Go value it stands for        {{.}} prints
    None                        nil                           <nil>
    True / False                bool                          true / false
    int                         int                           42
    float                       float64 (%v is %g, shortest)  1.5, 1e+06
    str                         string                        text
    list / tuple                slice                         [a b c]
    dict                        map (keys sorted)             map[a:1 b:2]
    dataclass                   struct                        {v1 v2}
    enum member                 named string or int           its value
    other object with __str__   fmt.Stringer                  str(obj)

Not supported (rarely used in formats, and printed as Go's "bad verb" would look): argument indexes
(``%[1]d``), ``%x`` of floats, ``%p`` and ``%T``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_SIMPLE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def type_name(value: object) -> str:
    """The Go type a Python value stands for, as Go's messages name it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, enum.Enum):
        return type(value).__name__
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return type(value).__name__


def sorted_keys(mapping: Mapping[Any, Any]) -> list[Any]:
    """A map's keys in the order Go's fmt and text/template visit them (internal/fmtsort): numbers by value,
    strings by bytes (the same as by code point), booleans false first."""
    return sorted(mapping, key=_sort_key)


def _sort_key(key: object) -> tuple[int, Any]:
    if isinstance(key, bool):
        return (0, key)
    if isinstance(key, int | float):
        return (1, key)
    return (2, str(key))


def plain(value: object) -> object:
    """An enum member stands for its value (a Go named type prints as its underlying type)."""
    return value.value if isinstance(value, enum.Enum) else value


def _is_stringer(value: object) -> bool:
    """An object with a __str__ of its own prints through it, as a Go value with a String method does."""
    cls = type(value)
    return cls.__module__ != "builtins" and not dataclasses.is_dataclass(value) and cls.__str__ is not object.__str__


# -- %v and Sprint ---------------------------------------------------------------------------------------------


def sprint_value(value: object) -> str:
    """The text of one value as fmt.Sprint (and a template's {{.}}) writes it."""
    return _format(value, _Spec(verb="v"))


def sprint(*args: object) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    parts: list[str] = []
    previous_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(plain(arg), str)
        if i > 0 and not is_string and not previous_string:
            parts.append(" ")
        parts.append(sprint_value(arg))
        previous_string = is_string
    return "".join(parts)


def sprintln(*args: object) -> str:
    """fmt.Sprintln: always a space between operands, and a newline."""
    return " ".join(sprint_value(arg) for arg in args) + "\n"


# -- Sprintf ---------------------------------------------------------------------------------------------------


@dataclass
class _Spec:
    verb: str
    minus: bool = False
    plus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    width: int | None = None
    precision: int | None = None


def sprintf(template: str, *args: object) -> str:
    """fmt.Sprintf with Go's verbs and flags, and Go's in-band complaints (%!d(string=x), %!v(MISSING))."""
    out: list[str] = []
    arg_index = 0
    i, end = 0, len(template)
    while i < end:
        percent = template.find("%", i)
        if percent < 0:
            out.append(template[i:])
            break
        out.append(template[i:percent])
        i = percent + 1
        spec = _Spec(verb="")
        i = _parse_flags(template, i, spec)
        i, arg_index = _parse_number(template, i, spec, "width", args, arg_index)
        if i < end and template[i] == ".":
            i, arg_index = _parse_number(template, i + 1, spec, "precision", args, arg_index)
            spec.precision = spec.precision or 0
        if i >= end:
            out.append("%!(NOVERB)")
            break
        spec.verb = template[i]
        i += 1
        if spec.verb == "%":
            out.append("%")
        elif arg_index >= len(args):
            out.append(f"%!{spec.verb}(MISSING)")
        else:
            out.append(_format(args[arg_index], spec))
            arg_index += 1
    if arg_index < len(args):
        extra = ", ".join(_typed(arg) for arg in args[arg_index:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _parse_flags(template: str, i: int, spec: _Spec) -> int:
    flags = {"-": "minus", "+": "plus", "#": "sharp", " ": "space", "0": "zero"}
    while i < len(template) and template[i] in flags:
        setattr(spec, flags[template[i]], True)
        i += 1
    return i


def _parse_number(
    template: str, i: int, spec: _Spec, name: str, args: Sequence[object], arg_index: int
) -> tuple[int, int]:
    """A width or precision: digits, or '*' taking an int argument (a negative width means '-')."""
    if i < len(template) and template[i] == "*":
        value = args[arg_index] if arg_index < len(args) else None
        if isinstance(value, int) and not isinstance(value, bool):
            if name == "width" and value < 0:
                spec.minus, value = True, -value
            setattr(spec, name, value)
        return i + 1, arg_index + 1
    start = i
    while i < len(template) and template[i].isdigit():
        i += 1
    if i > start:
        setattr(spec, name, int(template[start:i]))
    return i, arg_index


def _typed(value: object) -> str:
    return "<nil>" if value is None else f"{type_name(value)}={sprint_value(value)}"


def _bad_verb(value: object, verb: str) -> str:
    return f"%!{verb}({_typed(value)})"


def _format(value: object, spec: _Spec) -> str:
    value = plain(value)
    verb = spec.verb
    if value is None:
        return _pad("<nil>", spec) if verb == "v" else _bad_verb(None, verb)
    if isinstance(value, bool):
        return _pad("true" if value else "false", spec) if verb in "vt" else _bad_verb(value, verb)
    if isinstance(value, int):
        return _format_int(value, spec)
    if isinstance(value, float):
        return _format_float(value, spec)
    if isinstance(value, str):
        return _format_str(value, spec)
    if isinstance(value, Mapping):
        items = (f"{_format(k, spec)}:{_format(value[k], spec)}" for k in sorted_keys(value))
        return "map[" + " ".join(items) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_format(item, spec) for item in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        parts = (
            (f"{f.name}:" if spec.plus else "") + _format(getattr(value, f.name), spec)
            for f in fields
            if not f.name.startswith("_")
        )
        return "{" + " ".join(parts) + "}"
    if _is_stringer(value) and verb in "vsqxX":
        return _format_str(str(value), spec)
    return _pad(str(value), spec) if verb == "v" else _bad_verb(str(value), verb)


def _pad(text: str, spec: _Spec, *, zero_ok: bool = False) -> str:
    if spec.width is None or spec.width <= len(text):
        return text
    fill = spec.width - len(text)
    if spec.minus:
        return text + " " * fill
    if spec.zero and zero_ok:
        sign = text[0] if text[:1] in ("-", "+", " ") else ""
        return sign + "0" * fill + text[len(sign) :]
    return " " * fill + text


def _format_str(text: str, spec: _Spec) -> str:
    verb = spec.verb
    if verb in "vs":
        return _pad(text[: spec.precision] if spec.precision is not None else text, spec)
    if verb == "q":
        cut = text[: spec.precision] if spec.precision is not None else text
        return _pad(quote(cut, ascii_only=spec.plus), spec)
    if verb in "xX":
        data = text.encode()
        if spec.precision is not None:
            data = data[: spec.precision]
        digits = [f"{b:02x}" if verb == "x" else f"{b:02X}" for b in data]
        prefix = ("0x" if verb == "x" else "0X") if spec.sharp else ""
        if spec.space:
            return _pad(" ".join(prefix + d for d in digits), spec)
        return _pad(prefix + "".join(digits), spec)
    return _bad_verb(text, verb)


_INT_BASES = {"v": (10, ""), "d": (10, ""), "b": (2, "0b"), "o": (8, "0"), "O": (8, "0o"), "x": (16, "0x"),
              "X": (16, "0X")}  # fmt: skip


def _format_int(value: int, spec: _Spec) -> str:
    verb = spec.verb
    if verb == "c":
        return _pad(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd", spec)
    if verb == "q":
        return _pad(quote_rune(value), spec)
    if verb == "U":
        return _pad(f"U+{value:04X}", spec)
    if verb not in _INT_BASES:
        return _bad_verb(value, verb)
    base, prefix = _INT_BASES[verb]
    digits = {10: f"{abs(value)}", 2: f"{abs(value):b}", 8: f"{abs(value):o}", 16: f"{abs(value):x}"}[base]
    if verb == "X":
        digits = digits.upper()
    if spec.precision is not None:
        digits = digits.rjust(spec.precision, "0") if spec.precision or value else ""
    if (spec.sharp and verb in "bxX") or verb == "O" or (spec.sharp and verb == "o" and not digits.startswith("0")):
        digits = prefix + digits
    sign = "-" if value < 0 else "+" if spec.plus else " " if spec.space else ""
    return _pad(sign + digits, spec, zero_ok=spec.precision is None)


def _format_float(value: float, spec: _Spec) -> str:
    verb = spec.verb
    if verb not in "veEfFgG":
        return _bad_verb(value, verb)
    if math.isnan(value) or math.isinf(value):
        text = "NaN" if math.isnan(value) else ("-Inf" if value < 0 else "+Inf")
        if text == "NaN" and (spec.plus or spec.space):
            text = ("+" if spec.plus else " ") + text
        return _pad(text, spec)
    magnitude = abs(value)
    if verb in "vgG":
        body = format_float_g(magnitude, spec.precision)
        body = body.upper() if verb == "G" else body
    elif verb in "eE":
        body = f"{magnitude:.{6 if spec.precision is None else spec.precision}{verb}}"
    else:
        body = f"{magnitude:.{6 if spec.precision is None else spec.precision}f}"
    negative = math.copysign(1.0, value) < 0
    sign = "-" if negative else "+" if spec.plus else " " if spec.space else ""
    return _pad(sign + body, spec, zero_ok=True)


# -- floats ----------------------------------------------------------------------------------------------------


def shortest_digits(magnitude: float) -> tuple[str, int]:
    """The shortest decimal digits that read back as ``magnitude`` (what repr finds, as Go's strconv does),
    and the decimal point's place: magnitude == 0.DIGITS * 10**point. Zero has no digits."""
    mantissa, _, exponent = repr(magnitude).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    significant = significant.rstrip("0")
    return (significant, point) if significant else ("", 0)


def fixed_notation(digits: str, point: int, decimals: int) -> str:
    whole = (digits[:point] + "0" * (point - len(digits))) if point > 0 else "0"
    fraction = "".join(digits[point + i] if 0 <= point + i < len(digits) else "0" for i in range(decimals))
    return whole + ("." + fraction if decimals else "")


def exponent_notation(digits: str, point: int) -> str:
    digits = digits or "0"
    exp = point - 1 if digits != "0" else 0
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def format_float_g(magnitude: float, precision: int | None = None) -> str:
    """Go's %g of a non-negative float: shortest digits when no precision is given, and then the exponent form
    only when the exponent is below -4 or at least 6 (strconv's choice for the shortest form), so 1e+06."""
    if precision is not None:
        return f"{magnitude:.{precision}g}"  # C's %g rules, which are Go's when a precision is given
    digits, point = shortest_digits(magnitude)
    exp = point - 1
    if digits and (exp < -4 or exp >= 6):
        return exponent_notation(digits, point)
    return fixed_notation(digits, point, max(len(digits) - point, 0))


# -- quoting ---------------------------------------------------------------------------------------------------


def quote(text: str, *, ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteToASCII): a double-quoted Go string literal."""
    return '"' + "".join(_escape_rune(ch, '"', ascii_only) for ch in text) + '"'


def quote_rune(code: int) -> str:
    """strconv.QuoteRune: a single-quoted Go character literal."""
    ch = chr(code) if 0 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
    return "'" + _escape_rune(ch, "'", False) + "'"


def _escape_rune(ch: str, quote_char: str, ascii_only: bool) -> str:
    if ch in (quote_char, "\\"):
        return "\\" + ch
    code = ord(ch)
    if (ch == " " or ch.isprintable()) and (code < 0x80 or not ascii_only):
        return ch
    if ch in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[ch]
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
