"""Volumes, bind mounts and tmpfs as the user writes them (-v, --mount, --tmpfs), parsed into MountSpecs.

-v NAME:/path[:ro]           named volume (created on first use)
-v /host/path:/path[:ro]     bind mount of a host path
-v ./dir:/path, ../dir:/path bind mount of a path relative to the current directory (made absolute by
                             service/specs.py, which knows it), as Docker's CLI does since 23.0
-v /path                     anonymous volume (removed by `rm -v`)
--mount type=volume|bind|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…]
--tmpfs /path[:size=64m,mode=1777]
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from isobox.errors import InvalidArgumentError

_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


class MountKind(enum.StrEnum):
    VOLUME = "volume"
    BIND = "bind"
    TMPFS = "tmpfs"


@dataclass(frozen=True)
class MountSpec:
    kind: MountKind
    target: str
    source: str = ""  # volume name ("" = anonymous), or host path for binds
    readonly: bool = False
    tmpfs_options: tuple[str, ...] = ()


def _target(path: str, flag: str) -> str:
    if not path.startswith("/") or "\0" in path:
        raise InvalidArgumentError(f"mount target {path!r} must be an absolute path", op=f"parse {flag}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgumentError(f"mount target {path!r} may not contain '..'", op=f"parse {flag}")
    if not parts:
        raise InvalidArgumentError("mount target may not be /", op=f"parse {flag}")
    return "/" + "/".join(parts)


def is_host_path(source: str) -> bool:
    """An absolute path, or one relative to the current directory (., .., ./x, ../x): never a volume name."""
    return source.startswith(("/", "./", "../")) or source in (".", "..")


def validate_volume_name(name: str) -> str:
    if not _VOLUME_NAME.match(name):
        raise InvalidArgumentError(
            f"invalid volume name {name!r}: letters, digits, '_', '.', '-' (first a letter or digit)",
            op="parse volume",
        )
    return name


def parse_volume(text: str) -> MountSpec:
    """One -v/--volume value."""
    parts = text.split(":")
    if len(parts) == 1:
        return MountSpec(MountKind.VOLUME, _target(parts[0], "-v"))
    if len(parts) > 3:
        raise InvalidArgumentError(f"invalid volume {text!r}: use SOURCE:TARGET[:ro|rw]", op="parse -v")
    source, target = parts[0], _target(parts[1], "-v")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise InvalidArgumentError(f"invalid volume mode {mode!r} in {text!r}: use ro or rw", op="parse -v")
    if is_host_path(source):
        return MountSpec(MountKind.BIND, target, source, mode == "ro")
    return MountSpec(MountKind.VOLUME, target, validate_volume_name(source), mode == "ro")


def parse_mount(text: str) -> MountSpec:
    """One --mount value (Docker's comma-separated key=value form)."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        fields[key.strip()] = value.strip() if sep else "true"
    kind_text = fields.pop("type", "volume")
    try:
        kind = MountKind(kind_text)
    except ValueError:
        raise InvalidArgumentError(
            f"unknown mount type {kind_text!r} (volume, bind, tmpfs)", op="parse --mount"
        ) from None
    target = fields.pop("target", None) or fields.pop("destination", None) or fields.pop("dst", None)
    if not target:
        raise InvalidArgumentError(f"--mount {text!r} has no target", op="parse --mount")
    source = fields.pop("source", None) or fields.pop("src", None) or ""
    readonly = fields.pop("readonly", fields.pop("ro", "false")).lower() in ("true", "1", "yes")
    tmpfs: list[str] = []
    if "tmpfs-size" in fields:
        tmpfs.append(f"size={fields.pop('tmpfs-size')}")
    if "tmpfs-mode" in fields:
        tmpfs.append(f"mode={fields.pop('tmpfs-mode')}")
    if fields:
        raise InvalidArgumentError(f"unknown --mount option(s) {', '.join(sorted(fields))}", op="parse --mount")
    if kind is MountKind.BIND and not is_host_path(source):
        raise InvalidArgumentError(f"bind mount source {source!r} must be a host path (/abs or ./relative)",
                                   op="parse --mount")
    if kind is MountKind.VOLUME and source:
        validate_volume_name(source)
    return MountSpec(kind, _target(target, "--mount"), source, readonly, tuple(tmpfs))


def parse_tmpfs(text: str) -> MountSpec:
    target, _, options = text.partition(":")
    allowed = ("size=", "mode=", "uid=", "gid=", "nr_inodes=")
    opts = tuple(o for o in options.split(",") if o)
    for option in opts:
        if not option.startswith(allowed) and option not in ("ro", "rw", "noexec", "exec", "nosuid", "nodev"):
            raise InvalidArgumentError(f"unsupported tmpfs option {option!r}", op="parse --tmpfs")
    return MountSpec(MountKind.TMPFS, _target(target, "--tmpfs"), "", "ro" in opts, tuple(o for o in opts if o != "ro"))


@dataclass(frozen=True)
class MountPlan:
    """A mount resolved against the host: what the driver mounts where."""

    kind: MountKind
    target: str
    source: str = ""  # host path (volume data dir or bind source); "" for tmpfs
    readonly: bool = False
    volume: str = ""  # the volume's name, for volumes
    anonymous: bool = False
    tmpfs_options: tuple[str, ...] = ()
    disk: bool = False  # a disk volume: source is a raw ext4 image (VMs only), not a directory
