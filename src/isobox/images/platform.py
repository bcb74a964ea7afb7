"""Platforms (os/architecture/variant) and picking one manifest out of an index.

Normalisation follows containerd's platforms package, which Docker and Podman share: x86_64 is amd64,
aarch64 is arm64 whose default variant is v8, and an index entry without a variant matches any variant
of its architecture. Entries for "unknown/unknown" are attestation manifests (BuildKit), never images.
"""

from __future__ import annotations

import platform as host_platform
from dataclasses import dataclass
from typing import Any

from isobox.errors import InvalidArgumentError, ManifestError, NotFoundError

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386", "i686": "386"}
_DEFAULT_VARIANT = {"arm64": "v8"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def normalized(self) -> Platform:
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant or _DEFAULT_VARIANT.get(arch, "")
        return Platform(self.os.lower(), arch, variant)

    def matches(self, other: Platform) -> bool:
        """Whether an image built for ``other`` serves a request for ``self``."""
        want, have = self.normalized(), other.normalized()
        if (want.os, want.architecture) != (have.os, have.architecture):
            return False
        return not other.variant or not self.variant or want.variant == have.variant


def parse(text: str) -> Platform:
    """'linux/arm64/v8', 'linux/amd64', 'arm64' (os defaults to linux)."""
    parts = text.strip().lower().split("/")
    if len(parts) == 1 and parts[0]:
        parts = ["linux", parts[0]]
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgumentError(f"invalid platform {text!r} (expected os/arch[/variant])", op="parse platform")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def host() -> Platform:
    return Platform("linux", host_platform.machine().lower()).normalized()


def from_config(config: dict[str, Any]) -> Platform:
    return Platform(str(config.get("os") or ""), str(config.get("architecture") or ""),
                    str(config.get("variant") or ""))


def _entry_platform(entry: dict[str, Any]) -> Platform | None:
    described = entry.get("platform")
    if not isinstance(described, dict):
        return None
    return Platform(str(described.get("os", "")), str(described.get("architecture", "")),
                    str(described.get("variant", "")))


def select(index: dict[str, Any], wanted: Platform, what: str) -> dict[str, Any]:
    """The descriptor of the manifest for ``wanted`` in an OCI index / Docker manifest list.

    image-spec image-index.md: "manifests" is a list of descriptors with an optional "platform".
    """
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ManifestError(f"{what} is an index without a 'manifests' list", op="select platform")
    available: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        found = _entry_platform(entry)
        if found is None or found.os == "unknown":
            continue
        available.append(str(found))
        if wanted.matches(found):
            return entry
    raise NotFoundError(
        f"{what} has no image for platform {wanted}; it has: {', '.join(available) or 'none'}"
        " (choose one with --platform)",
        op="select platform",
    )
