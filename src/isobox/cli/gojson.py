"""Go's encoding/json output, as Docker's ``json`` template function writes it, for isobox's Go templates.

Docker encodes with HTML escaping turned off (docker/cli templates/templates.go: SetEscapeHTML(false)), so
``<``, ``>`` and ``&`` stay as they are, where plain encoding/json writes \\u003c, \\u003e and \\u0026.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from isobox.cli.goprint import exponent_notation, fixed_notation, plain, shortest_digits, sprint_value, type_name

# encoding/json writes these short forms (\b and \f since Go 1.22); other control characters as \u00XX.
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


class JSONError(ValueError):
    """A value encoding/json refuses: NaN or an infinity (``unsupported_value``), or a type it cannot encode."""

    def __init__(self, message: str, *, unsupported_value: bool = False) -> None:
        super().__init__(message)
        self.unsupported_value = unsupported_value


def to_json(value: object) -> str:
    """Compact JSON as Go's encoding/json writes it with HTML escaping off (Docker's ``json`` function):
    map keys sorted, floats in Go's form (3, not 3.0; 1e+21; 1e-7), <, > and & left as they are, U+2028 and
    U+2029 escaped. Raises JSONError for NaN, infinities and types that have no JSON form."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def _encode(value: object, out: list[str]) -> None:
    value = plain(value)
    if value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_json_float(value))
    elif isinstance(value, str):
        out.append(_json_string(value))
    elif isinstance(value, Mapping):
        _encode_object([(str(k), value[k]) for k in value], out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Docker's row contexts marshal as a map of their fields (cli/command/formatter/reflect.go): sorted keys.
        fields = [f.name for f in dataclasses.fields(value) if not f.name.startswith("_")]
        _encode_object([(name, getattr(value, name)) for name in fields], out)
    else:
        raise JSONError(f"json: unsupported type: {type_name(value)}")


def _encode_object(pairs: list[tuple[str, object]], out: list[str]) -> None:
    out.append("{")
    for i, (key, item) in enumerate(sorted(pairs, key=lambda pair: pair[0])):
        if i:
            out.append(",")
        out.append(_json_string(key))
        out.append(":")
        _encode(item, out)
    out.append("}")


def _json_string(text: str) -> str:
    parts = ['"']
    for ch in text:
        if ch in _JSON_ESCAPES:
            parts.append(_JSON_ESCAPES[ch])
        elif ch < " " or ch in "\u2028\u2029":
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


def _json_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise JSONError(f"json: unsupported value: {sprint_value(value)}", unsupported_value=True)
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    magnitude = abs(value)
    digits, point = shortest_digits(magnitude)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = exponent_notation(digits, point)
        mantissa, _, exp = text.partition("e")
        return f"{sign}{mantissa}e{exp[0]}{int(exp[1:])}"  # Go writes e-7, not e-07
    return sign + fixed_notation(digits, point, max(len(digits) - point, 0))
