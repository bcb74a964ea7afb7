"""Manifest and index kinds (images/manifest.py): CVE-2021-41190's ambiguous documents and media-type lies."""

from __future__ import annotations

import pytest

from isobox.errors import ManifestError
from isobox.images.manifest import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, document_type

IMAGE = {"schemaVersion": 2, "config": {}, "layers": []}
INDEX = {"schemaVersion": 2, "manifests": []}
BOTH = {"schemaVersion": 2, "manifests": [], "config": {}, "layers": []}


def test_kinds_from_the_body_the_descriptor_or_the_registry() -> None:
    assert document_type(IMAGE, "m") == OCI_MANIFEST
    assert document_type(INDEX, "m") == OCI_INDEX
    assert document_type({**IMAGE, "mediaType": DOCKER_MANIFEST}, "m", content_type=DOCKER_MANIFEST) == DOCKER_MANIFEST
    assert document_type(IMAGE, "m", content_type=DOCKER_MANIFEST) == DOCKER_MANIFEST
    assert document_type(IMAGE, "m", descriptor_type=DOCKER_MANIFEST) == DOCKER_MANIFEST
    assert document_type({**IMAGE, "mediaType": OCI_MANIFEST}, "m", content_type="") == OCI_MANIFEST


def test_an_untyped_document_with_both_shapes_is_ambiguous() -> None:
    with pytest.raises(ManifestError, match="ambiguous"):
        document_type(BOTH, "m")
    with pytest.raises(ManifestError, match="with a 'manifests' list"):
        document_type(BOTH, "m", content_type=OCI_MANIFEST)
    with pytest.raises(ManifestError, match="with 'config' or 'layers'"):
        document_type({**BOTH, "mediaType": OCI_INDEX}, "m")


@pytest.mark.parametrize("where", ["descriptor_type", "content_type"])
def test_a_body_that_disagrees_with_what_pointed_to_it_is_refused(where: str) -> None:
    with pytest.raises(ManifestError, match=r"says it is 'application/vnd\.oci\.image\.manifest\.v1\+json'"):
        document_type({**IMAGE, "mediaType": OCI_MANIFEST}, "m", **{where: DOCKER_MANIFEST})
    with pytest.raises(ManifestError, match="descriptor pointing to it says"):
        document_type(IMAGE, "m", descriptor_type=OCI_MANIFEST, content_type=DOCKER_MANIFEST)
    with pytest.raises(ManifestError, match="not a string"):
        document_type({**IMAGE, "mediaType": 7}, "m")
