"""Frozen dataclasses ⇄ JSON, driven by type hints, so records round-trip without hand-written code."""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

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


def from_dict(cls: type[T], raw: dict[str, Any]) -> T:
    hints = get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in raw:
            kwargs[f.name] = _decode(hints[f.name], raw[f.name])
    return cls(**kwargs)


def loads(cls: type[T], text: str) -> T:
    return from_dict(cls, json.loads(text))


def loads_stored(cls: type[T], text: str, what: str) -> T:
    """A record read back from the database: one that does not decode is damaged state (a StateError naming
    it and `isobox system check`), never a traceback."""
    try:
        return loads(cls, text)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        from isobox.errors import StateError

        raise StateError(
            f"the stored record of {what} is damaged ({type(exc).__name__}: {exc}): run `isobox system check`",
            op="read state",
        ) from exc
