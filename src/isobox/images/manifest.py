"""Manifests, indexes and their descriptors: media types, and the checks made before anything is stored.

The document kinds follow image-spec manifest.md and image-index.md (and Docker's schema 2, which uses
the same fields). CVE-2021-41190 (GHSA-77vh-xpmg-72qh, GHSA-mc8v-mgrf-8f4m) showed that a document
that can be read both as an image manifest and as an index lets two clients see two different images
under one digest; image-spec 1.0.2 and distribution-spec 1.0.1 answered with three rules, all applied here:

- a document whose kind is not said (no ``mediaType``) must not carry both ``manifests`` and
  ``config``/``layers``; a document that says it is a manifest must not carry ``manifests``, nor an index
  ``config``/``layers`` (what containerd's ``validateMediaType`` also refuses);
- the ``mediaType`` of a descriptor (an index's entry) must be the one the document it points to says;
- a registry's ``Content-Type`` must be the document's ``mediaType`` when the document has one.
"""

from __future__ import annotations

import json
from typing import Any

from isobox.errors import ManifestError
from isobox.images import reference

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 8 * 1024 * 1024

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
SCHEMA1_TYPES = frozenset({"application/vnd.docker.distribution.manifest.v1+json",
                           "application/vnd.docker.distribution.manifest.v1+prettyjws"})
LAYER_TYPES = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{what} is not valid JSON: {exc}", op="parse") from exc
    if not isinstance(value, dict):
        raise ManifestError(f"{what} is not a JSON object", op="parse")
    return value


def document_type(document: dict[str, Any], what: str, *, descriptor_type: str = "", content_type: str = "",
                  op: str = "pull") -> str:
    """The media type of a manifest or index, after the checks above; refuses what is ambiguous.

    ``descriptor_type`` is what the descriptor that pointed here said (an index entry, an OCI layout's
    index.json), ``content_type`` what the registry sent (parameters stripped).
    """
    body = document.get("mediaType")
    if body is not None and not isinstance(body, str):
        raise ManifestError(f"{what} has a mediaType that is not a string: {body!r}", op=op)
    body = body or ""
    if body and descriptor_type and body != descriptor_type:
        raise ManifestError(f"{what} says it is {body!r}, but the descriptor pointing to it says "
                            f"{descriptor_type!r}", op=op)
    # distribution-spec 1.0.1: a mediaType present in the document must match the Content-Type. A registry
    # that sends none says nothing, and is then judged by the document alone.
    if body and content_type and body != content_type:
        raise ManifestError(f"{what} says it is {body!r}, but the registry sent it as {content_type!r}", op=op)
    known = MANIFEST_TYPES | INDEX_TYPES | SCHEMA1_TYPES
    if descriptor_type and content_type in known and content_type != descriptor_type:
        raise ManifestError(f"{what} was sent as {content_type!r}, but the descriptor pointing to it says "
                            f"{descriptor_type!r}", op=op)
    declared = body or descriptor_type or (content_type if content_type in known else "")
    as_index = "manifests" in document
    as_image = "config" in document or "layers" in document
    if declared in MANIFEST_TYPES and as_index:
        raise ManifestError(f"{what} is a manifest ({declared}) with a 'manifests' list, as only an index has",
                            op=op)
    if declared in INDEX_TYPES and as_image:
        raise ManifestError(f"{what} is an index ({declared}) with 'config' or 'layers', as only a manifest has",
                            op=op)
    if declared:
        return declared
    if as_index and as_image:
        raise ManifestError(f"{what} has no mediaType and both 'manifests' and 'config'/'layers': it is "
                            "ambiguous (could be read as an index or as an image manifest)", op=op)
    return OCI_INDEX if as_index else OCI_MANIFEST


def checked_digest(value: object, what: str, op: str = "commit image") -> str:
    if not isinstance(value, str) or not reference.is_digest(value):
        raise ManifestError(f"{what} is not a valid digest: {value!r}", op=op)
    return value


def descriptor(document: dict[str, Any], key: str, what: str) -> tuple[str, int]:
    """(digest, size) of the descriptor ``document[key]`` (e.g. a manifest's config), checked."""
    desc = document.get(key)
    digest = desc.get("digest") if isinstance(desc, dict) else None
    size = desc.get("size") if isinstance(desc, dict) else None
    if not isinstance(digest, str) or not reference.is_digest(digest) or not isinstance(size, int) or size < 0:
        raise ManifestError(f"{what} has an invalid {key} descriptor", op="pull")
    return digest, size
