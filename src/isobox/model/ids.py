"""Workload ids and names."""

from __future__ import annotations

import os
import re

from isobox.errors import InvalidArgumentError

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_ADJECTIVES = ("brave", "calm", "eager", "fond", "keen", "lucid", "merry", "nimble", "quiet", "sharp", "swift", "vivid")
_NOUNS = ("otter", "heron", "lynx", "finch", "badger", "marten", "ibis", "gecko", "puffin", "tapir", "wren", "yak")


def new_id() -> str:
    """A 64-hex-digit id, like Docker's (os.urandom, which `secrets` wraps: importing secrets pulls
    in hmac and hashlib, milliseconds on every start)."""
    return os.urandom(32).hex()


def short_id(full: str) -> str:
    return full[:12]


def random_name() -> str:
    pick = os.urandom(4)
    return f"{_ADJECTIVES[pick[0] % len(_ADJECTIVES)]}_{_NOUNS[pick[1] % len(_NOUNS)]}_{pick[2:].hex()}"


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgumentError(
            f"invalid name {name!r}: use letters, digits, '_', '.', '-' (first a letter or digit, at most 128)",
            op="validate name",
        )
    return name


def name_in_use(name: str, holder_id: str) -> str:
    """Docker's words for a name taken (daemon/names.go), which scripts and the docker CLI look for."""
    return (
        f'Conflict. The container name "/{name}" is already in use by container "{holder_id}". You have to '
        "remove (or rename) that container to be able to reuse that name."
    )
