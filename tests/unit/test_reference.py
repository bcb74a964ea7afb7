"""Image references (Docker's naming rules) and platform selection from an index."""

from __future__ import annotations

import pytest

from isobox.errors import InvalidArgumentError, ManifestError, NotFoundError
from isobox.images import platform as platforms
from isobox.images.reference import Reference, is_digest, parse

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", Reference("docker.io", "library/busybox", "latest")),
        ("busybox:1.36", Reference("docker.io", "library/busybox", "1.36")),
        ("library/busybox", Reference("docker.io", "library/busybox", "latest")),
        ("user/app", Reference("docker.io", "user/app", "latest")),
        ("index.docker.io/user/app", Reference("docker.io", "user/app", "latest")),
        ("ghcr.io/org/team/app:v1", Reference("ghcr.io", "org/team/app", "v1")),
        ("localhost/app", Reference("localhost", "app", "latest")),
        ("localhost:5000/app:x", Reference("localhost:5000", "app", "x")),
        ("127.0.0.1:5000/a/b", Reference("127.0.0.1:5000", "a/b", "latest")),
        ("[::1]:5000/app", Reference("[::1]:5000", "app", "latest")),
        (f"app@{DIGEST}", Reference("docker.io", "library/app", None, DIGEST)),
        (f"reg.io/app:v1@{DIGEST}", Reference("reg.io", "app", "v1", DIGEST)),
        ("a.b/c_d/e__f/g-h--i", Reference("a.b", "c_d/e__f/g-h--i", "latest")),
    ],
)
def test_parse(text: str, expected: Reference) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " busybox", "Busybox", "app:", "app:-x", "app@sha256:abc", f"app@{DIGEST}\n", "a//b", "app:" + "x" * 129,
     "-app", "app_", "reg.io/UPPER", "app:tag\n", "a..b/c/../d", "my_reg:99999x/app"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse(text)


def test_str_target_and_familiar() -> None:
    ref = parse("busybox")
    assert str(ref) == "docker.io/library/busybox:latest"
    assert ref.familiar() == "busybox:latest"
    assert ref.target == "latest"
    pinned = parse(f"reg.io/app:v1@{DIGEST}")
    assert pinned.target == DIGEST
    assert pinned.familiar() == f"reg.io/app:v1@{DIGEST}"
    assert pinned.with_tag("v2") == Reference("reg.io", "app", "v2")


def test_is_digest_is_anchored() -> None:
    assert is_digest(DIGEST)
    assert not is_digest(DIGEST + "\n")
    assert not is_digest("sha256:../../etc")
    assert not is_digest("md5:" + "ab" * 16)


# ---- platforms ---------------------------------------------------------------------------------


def test_platform_parse_and_normalize() -> None:
    assert platforms.parse("linux/arm64") == platforms.Platform("linux", "arm64")
    assert platforms.parse("arm64") == platforms.Platform("linux", "arm64")
    assert str(platforms.parse("linux/arm/v7")) == "linux/arm/v7"
    assert platforms.Platform("linux", "aarch64").normalized() == platforms.Platform("linux", "arm64", "v8")
    for bad in ("", "linux/", "a/b/c/d"):
        with pytest.raises(InvalidArgumentError):
            platforms.parse(bad)


def test_platform_matching_rules() -> None:
    want = platforms.parse("linux/arm64")
    assert want.matches(platforms.Platform("linux", "arm64", "v8"))
    assert want.matches(platforms.Platform("linux", "aarch64"))
    assert not want.matches(platforms.Platform("linux", "amd64"))
    assert not platforms.parse("linux/arm/v7").matches(platforms.Platform("linux", "arm", "v6"))
    assert platforms.parse("linux/arm/v7").matches(platforms.Platform("linux", "arm"))


INDEX = {
    "manifests": [
        {"digest": "sha256:" + "00" * 32, "platform": {"os": "unknown", "architecture": "unknown"}},
        {"digest": "sha256:" + "11" * 32, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:" + "22" * 32, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"digest": "sha256:" + "33" * 32},
    ]
}


def test_select_from_index() -> None:
    assert platforms.select(INDEX, platforms.parse("linux/amd64"), "x")["digest"] == "sha256:" + "11" * 32
    assert platforms.select(INDEX, platforms.parse("linux/arm64/v8"), "x")["digest"] == "sha256:" + "22" * 32
    with pytest.raises(NotFoundError, match=r"platform linux/ppc64le; it has: linux/amd64, linux/arm64/v8"):
        platforms.select(INDEX, platforms.parse("linux/ppc64le"), "image x")
    with pytest.raises(ManifestError):
        platforms.select({"manifests": "nope"}, platforms.host(), "x")
