"""What a build is asked to do: docker build's options as one frozen value, shared by the CLI, the Python
API and the HTTP API, and the parsing of the few that are text (``--secret``, ``--network``, ``--platform``).

The context is one of: a directory (``context_dir``), a tar archive (``context_tar``: the CLI's ``-``
and the HTTP API's body; plain, gzip, bzip2, xz or zstd), or nothing but a Dockerfile (``dockerfile_text``
with neither, as ``docker build - < Dockerfile``). The Dockerfile is ``dockerfile`` (a host path for a
directory context, a path inside the archive for a tar one; default ``Dockerfile``) unless
``dockerfile_text`` gives its text (``-f -``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from isobox.errors import InvalidArgumentError

__all__ = ["EPOCH_ARG", "BuildNetwork", "BuildOptions", "Secret", "parse_secret", "source_date_epoch"]

_SECRET_ID = re.compile(r"[A-Za-z0-9_.-]+\Z")
EPOCH_ARG = "SOURCE_DATE_EPOCH"


class BuildNetwork(enum.StrEnum):
    """The network RUN steps get: isobox's default bridge (with the internet), or none at all."""

    DEFAULT = "default"
    NONE = "none"


@dataclass(frozen=True)
class Secret:
    """``--secret id=ID,src=PATH``: a host file RUN --mount=type=secret shows at /run/secrets/ID."""

    id: str
    source: Path


def parse_secret(text: str) -> Secret:
    """``id=ID,src=PATH`` (also ``source=``; ``type=file`` accepted; ``env=`` is not supported)."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise InvalidArgumentError(f"invalid --secret {text!r}: use id=ID,src=PATH", op="parse --secret")
        fields[key.strip().lower()] = value.strip()
    kind = fields.pop("type", "file")
    if kind != "file":
        raise InvalidArgumentError(f"invalid --secret {text!r}: only file secrets are supported (type=file)",
                                   op="parse --secret")
    secret_id = fields.pop("id", "")
    source = fields.pop("src", "") or fields.pop("source", "")
    if fields:
        raise InvalidArgumentError(f"invalid --secret {text!r}: unknown key(s) {', '.join(sorted(fields))}",
                                   op="parse --secret")
    if not secret_id or not _SECRET_ID.match(secret_id):
        raise InvalidArgumentError(f"invalid --secret {text!r}: the id must be letters, digits, '.', '_' or '-'",
                                   op="parse --secret")
    if not source:
        raise InvalidArgumentError(f"invalid --secret {text!r}: give the file with src=PATH", op="parse --secret")
    path = Path(source).expanduser()
    if not path.is_file():
        raise InvalidArgumentError(f"--secret {secret_id}: {path} is not a file", op="parse --secret",
                                   path=str(path))
    return Secret(secret_id, path.resolve())


def source_date_epoch(build_args: Mapping[str, str]) -> int | None:
    """SOURCE_DATE_EPOCH (reproducible-builds.org's variable) from the build args, as BuildKit takes it;
    None when not given. The CLI passes the one of its environment as a build arg."""
    text = build_args.get(EPOCH_ARG, "")
    if not text:
        return None
    if not text.isdigit():
        raise InvalidArgumentError(f"{EPOCH_ARG}={text!r} is not a number of seconds since 1970",
                                   op="parse SOURCE_DATE_EPOCH")
    return int(text)


@dataclass(frozen=True)
class BuildOptions:
    context_dir: Path | None = None
    context_tar: Path | None = None
    dockerfile: str | None = None
    dockerfile_text: str | None = None
    tags: tuple[str, ...] = ()
    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    platform: str | None = None
    network: BuildNetwork = BuildNetwork.DEFAULT
    secrets: tuple[Secret, ...] = ()
    vm: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.context_dir is not None and self.context_tar is not None:
            raise InvalidArgumentError("a build has one context: a directory or an archive", op="build")
        seen: set[str] = set()
        for secret in self.secrets:
            if secret.id in seen:
                raise InvalidArgumentError(f"--secret {secret.id} is given twice", op="build")
            seen.add(secret.id)

    @property
    def args(self) -> dict[str, str]:
        return dict(self.build_args)
