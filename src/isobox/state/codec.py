"""Frozen dataclasses ⇄ JSON, driven by type hints, so records round-trip without hand-written code."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from typing import Any, TypeVar, cast, get_args, get_origin, get_type_hints

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), sort_keys=True)


def _decode(hint: Any, raw: Any) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return raw
    if origin is typing.Union or origin is types.UnionType:
        if raw is None:
            return None
        options = [a for a in get_args(hint) if a is not type(None)]
        return _decode(options[0], raw)
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item) for item in raw)
        return tuple(_decode(a, item) for a, item in zip(args, raw, strict=True))
    if origin is dict:
        key_t, val_t = get_args(hint)
        return {_decode(key_t, k): _decode(val_t, v) for k, v in raw.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, raw)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(raw)
    if hint is float and isinstance(raw, int):
        return float(raw)
    return raw


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, type) of a dataclass's fields, resolved once per class: get_type_hints evaluates every
    annotation string again on each call, which made reading a record cost a millisecond."""
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def from_dict(cls: type[T], raw: dict[str, Any]) -> T:
    kwargs = {name: _decode(hint, raw[name]) for name, hint in _fields(cast(type, cls)) if name in raw}
    return cls(**kwargs)


def loads(cls: type[T], text: str) -> T:
    return from_dict(cls, json.loads(text))
