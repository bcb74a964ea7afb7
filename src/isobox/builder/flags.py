"""Instruction flags (``COPY --from=build``, ``RUN --mount=…``) checked against what each instruction takes.

A boolean flag is ``--link``, ``--link=true`` or ``--link=false``; a string flag needs ``=value``; a
repeatable flag (``--mount``, ``--exclude``) may be given several times. Anything else is refused
with the flag's name, as Docker does.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["FlagError", "FlagKind", "Flags", "parse_flags"]


class FlagKind(enum.Enum):
    BOOL = enum.auto()
    STRING = enum.auto()
    STRINGS = enum.auto()  # repeatable


class FlagError(ValueError):
    """A flag the instruction does not take, given twice, or without a usable value."""


@dataclass(frozen=True)
class Flags:
    """The flags given, by name without the dashes."""

    strings: Mapping[str, str] = field(default_factory=dict)
    bools: Mapping[str, bool] = field(default_factory=dict)
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def string(self, name: str, default: str = "") -> str:
        return self.strings.get(name, default)

    def flag(self, name: str) -> bool:
        return self.bools.get(name, False)

    def optional_flag(self, name: str) -> bool | None:
        return self.bools.get(name)

    def repeated(self, name: str) -> tuple[str, ...]:
        return self.lists.get(name, ())


def parse_flags(words: list[str], allowed: Mapping[str, FlagKind]) -> Flags:
    strings: dict[str, str] = {}
    bools: dict[str, bool] = {}
    lists: dict[str, list[str]] = {}
    for word in words:
        if word == "--":
            break
        flag, has_value, value = word.partition("=")
        name = flag[2:]
        kind = allowed.get(name)
        if not flag.startswith("--") or kind is None:
            known = ", ".join(f"--{known}" for known in sorted(allowed)) or "none"
            raise FlagError(f"unknown flag: {flag} (this instruction takes: {known})")
        if kind != FlagKind.STRINGS and (name in strings or name in bools):
            raise FlagError(f"duplicate flag specified: {flag}")
        if kind == FlagKind.BOOL:
            bools[name] = _boolean(flag, value, bool(has_value))
        elif not has_value:
            raise FlagError(f"missing a value on flag: {flag}")
        elif kind == FlagKind.STRING:
            strings[name] = value
        else:
            lists.setdefault(name, []).append(value)
    return Flags(strings, bools, {name: tuple(values) for name, values in lists.items()})


def _boolean(flag: str, value: str, has_value: bool) -> bool:
    if has_value and not value:
        raise FlagError(f"missing a value on flag: {flag}")
    lowered = value.lower()
    if lowered in ("", "true"):
        return True
    if lowered == "false":
        return False
    raise FlagError(f"expecting boolean value for flag {flag}, not: {value}")
