"""Image references with Docker's naming rules (distribution/reference).

    busybox                      → docker.io/library/busybox:latest
    ghcr.io/org/app:1.2          → ghcr.io/org/app:1.2
    localhost:5000/app@sha256:…  → localhost:5000/app@sha256:…
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from isobox.errors import InvalidArgumentError

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
NAME_MAX_CHARS = 255  # distribution/reference: NameTotalLengthMax, the whole name with its registry

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG = re.compile(r"^[\w][\w.-]{0,127}\Z", re.ASCII)
_DIGEST = re.compile(r"^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\Z")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?\Z")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def target(self) -> str:
        """What to ask the registry for: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def familiar(self) -> str:
        """Short form for display: docker.io/library/busybox:latest → busybox:latest."""
        text = str(self)
        if self.registry == DEFAULT_REGISTRY:
            text = text.removeprefix(f"{DEFAULT_REGISTRY}/").removeprefix("library/")
        return text


def parse(text: str) -> Reference:
    original = text
    if not text or len(text) > 4096 or text != text.strip():
        raise InvalidArgumentError(f"invalid image reference {original!r}", op="parse reference")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidArgumentError(f"invalid digest in image reference {original!r}", op="parse reference")
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidArgumentError(f"invalid tag {tag!r} in image reference {original!r}", op="parse reference")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, repository = first, rest
        if not _DOMAIN.match(registry):
            raise InvalidArgumentError(f"invalid registry {registry!r} in {original!r}", op="parse reference")
    else:
        registry, repository = DEFAULT_REGISTRY, text
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPOSITORY.match(repository):
        raise InvalidArgumentError(
            f"invalid repository name {repository!r} in {original!r} (lowercase letters, digits, separators)",
            op="parse reference",
        )
    if len(f"{registry}/{repository}") > NAME_MAX_CHARS:
        shown = original if len(original) <= 64 else original[:64] + "…"
        raise InvalidArgumentError(
            f"invalid image reference {shown!r}: repository name must not be more than "
            f"{NAME_MAX_CHARS} characters (with its registry)",
            op="parse reference",
        )
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)


def is_digest(text: str) -> bool:
    return bool(_DIGEST.match(text))
