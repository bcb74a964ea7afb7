"""RUN --mount specs (the Dockerfile reference, "RUN --mount"), parsed into RunMount values.

    --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000
    --mount=type=bind,source=go.sum,target=/src/go.sum,from=deps,rw
    --mount=type=tmpfs,target=/tmp,size=64m
    --mount=type=secret,id=token,env=TOKEN,required
    --mount=type=ssh

The spec is comma-separated (CSV quoting allowed); keys are case-insensitive. Option values may hold
build variables: the parser checks what it can as written and a BuildPlan parses the expanded spec
again (``parse_mount(text, expand)``). ``from=`` may not use variables (Docker refuses them too).
"""

from __future__ import annotations

import csv
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from isobox.errors import InvalidArgumentError

__all__ = ["CacheSharing", "MountType", "NetworkMode", "RunMount", "SecurityMode", "parse_bool", "parse_mount"]


class MountType(enum.StrEnum):
    BIND = "bind"
    CACHE = "cache"
    TMPFS = "tmpfs"
    SECRET = "secret"
    SSH = "ssh"


class CacheSharing(enum.StrEnum):
    SHARED = "shared"
    PRIVATE = "private"
    LOCKED = "locked"


class NetworkMode(enum.StrEnum):
    """RUN --network: the build's default network, none, or the host's network namespace."""

    DEFAULT = "default"
    NONE = "none"
    HOST = "host"


class SecurityMode(enum.StrEnum):
    """RUN --security: sandbox (default) or insecure (needs the insecure entitlement)."""

    SANDBOX = "sandbox"
    INSECURE = "insecure"


@dataclass(frozen=True)
class RunMount:
    """One --mount. ``readonly`` already holds the type's default (bind, secret, ssh: read-only)."""

    text: str
    type: MountType = MountType.BIND
    target: str = ""
    source: str = ""
    from_: str = ""  # a stage name or an image, "" = the build context (bind) / a fresh cache
    readonly: bool = True
    id: str = ""
    sharing: CacheSharing | None = None  # cache mounts only; None = shared
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size_bytes: int | None = None  # tmpfs only
    required: bool = False  # secret and ssh only
    env: str | None = None  # secret only: the environment variable that receives it


_BOOL_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_BOOL_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?\Z")
_TYPED_KEYS = frozenset({"type", "readonly", "ro", "readwrite", "rw", "required", "size", "sharing", "mode",
                         "uid", "gid"})
_KEYS = ("type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro", "readwrite", "rw",
         "id", "sharing", "required", "size", "mode", "uid", "gid", "env")


def parse_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool, which Docker uses for option values; None when not a boolean."""
    return True if text in _BOOL_TRUE else False if text in _BOOL_FALSE else None


def _size_bytes(text: str) -> int | None:
    """docker/go-units RAMInBytes: 64m, 1.5g, 512k, 1024 (binary multiples)."""
    match = _SIZE.match(text)
    if match is None:
        return None
    power = " kmgtp".index((match.group(2) or " ").lower())
    return int(float(match.group(1)) * 1024**power)


def _unsigned(text: str, base: int) -> int | None:
    """Go's strconv.ParseUint(text, base, 32): digits only, no sign, prefix or underscore."""
    if not re.fullmatch("[0-7]+" if base == 8 else "[0-9]+", text):
        return None
    value = int(text, base)
    return value if value < 2**32 else None


class _MountBuilder:
    def __init__(self, text: str) -> None:
        self.text = text
        self.values: dict[str, object] = {"type": MountType.BIND}
        self.readonly_set = False
        self.deferred = False  # a typed option was written with a variable: checked after expansion

    def fail(self, reason: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"invalid --mount {self.text!r}: {reason}", op="parse RUN --mount")

    def flag(self, key: str) -> None:
        if key in ("readonly", "ro", "readwrite", "rw"):
            self.values["readonly"] = key in ("readonly", "ro")
            self.readonly_set = True
        elif key == "required":
            self._required(True)
        else:
            raise self.fail(f"option {key!r} must be a key=value pair")

    def _required(self, value: bool) -> None:
        if self.values["type"] not in (MountType.SECRET, MountType.SSH):
            raise self.fail(f"'required' is only for secret and ssh mounts, not {self.values['type']}")
        self.values["required"] = value

    def option(self, key: str, value: str) -> None:
        if key in ("source", "src"):
            self.values["source"] = value
        elif key in ("target", "dst", "destination"):
            self.values["target"] = value
        elif key in ("from", "id", "env"):
            self.values["from_" if key == "from" else key] = value
        elif key in _TYPED_KEYS:
            self._typed(key, value)
        else:
            raise self.fail(f"unknown option {key!r} (known: {', '.join(_KEYS)})")

    def _typed(self, key: str, value: str) -> None:
        if key == "type":
            self.values["type"] = self._choice(MountType, value, "mount type")
        elif key == "sharing":
            self.values["sharing"] = self._choice(CacheSharing, value, "sharing")
        elif key in ("readonly", "ro", "readwrite", "rw", "required"):
            flag = parse_bool(value)
            if flag is None:
                raise self.fail(f"{key}={value!r} is not a boolean")
            if key == "required":
                self._required(flag)
            else:
                self.values["readonly"] = flag == (key in ("readonly", "ro"))
                self.readonly_set = True
        elif key == "size":
            self._size(value)
        else:
            number = _unsigned(value, 8 if key == "mode" else 10)
            if number is None:
                raise self.fail(f"{key}={value!r} is not a{'n octal' if key == 'mode' else ''} number")
            self.values[key] = number

    def _size(self, value: str) -> None:
        if self.values["type"] != MountType.TMPFS:
            raise self.fail(f"'size' is only for tmpfs mounts, not {self.values['type']}")
        size = _size_bytes(value)
        if size is None:
            raise self.fail(f"size={value!r} is not a size (e.g. 64m)")
        self.values["size_bytes"] = size

    def _choice(self, kind: type[MountType] | type[CacheSharing], value: str, what: str) -> enum.StrEnum:
        try:
            return kind(value.lower())
        except ValueError:
            choices = ", ".join(member.value for member in kind)
            raise self.fail(f"unknown {what} {value!r} (use {choices})") from None

    def build(self) -> RunMount:
        mount = RunMount(text=self.text, **self.values)  # type: ignore[arg-type]
        if not self.readonly_set:
            mount = replace(mount, readonly=mount.type not in (MountType.CACHE, MountType.TMPFS))
        if not self.deferred:
            self._check(mount)
        return mount

    def _check(self, mount: RunMount) -> None:
        if mount.type not in (MountType.SECRET, MountType.SSH, MountType.CACHE):
            for name in ("mode", "uid", "gid"):
                if getattr(mount, name) is not None:
                    raise self.fail(f"{name} is not allowed for {mount.type} mounts")
        if mount.type == MountType.SECRET:
            if mount.from_:
                raise self.fail("a secret mount takes no 'from'")
            if mount.sharing is not None:
                raise self.fail("a secret mount takes no 'sharing'")
            if not (mount.source or mount.target or mount.id):
                raise self.fail("a secret mount needs an id, a source or a target")
            if mount.source and mount.id:
                raise self.fail("a secret mount takes either 'source' or 'id', not both")
        if mount.sharing is not None and mount.type != MountType.CACHE:
            raise self.fail(f"'sharing' is only for cache mounts, not {mount.type}")


def parse_mount(text: str, expand: Callable[[str], str] | None = None) -> RunMount:
    """One --mount value. ``expand`` expands each option value (a BuildPlan passes the build's
    variables); without it values are taken as written and typed options that use variables are
    only checked once expanded.
    """
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as exc:
        raise InvalidArgumentError(f"invalid --mount {text!r}: {exc}", op="parse RUN --mount") from exc
    builder = _MountBuilder(text)
    for field in fields:
        key, sep, value = field.partition("=")
        key = key.lower()
        if not sep:
            builder.flag(key)
            continue
        if key == "from" and "$" in value[:-1]:
            raise builder.fail("'from' does not take variables; declare a stage (FROM ${VAR} AS name) instead")
        if expand is not None:
            value = expand(value)
        elif "$" in value and key in _TYPED_KEYS:
            builder.deferred = True
            continue
        builder.option(key, value)
    return builder.build()
