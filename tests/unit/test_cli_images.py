"""`isobox images` rows (cli/images.py): tags, RepoDigests with --digests, digest-only repositories."""

from __future__ import annotations

from isobox.cli.images import _image_rows
from isobox.service.images import ImageSummary

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def summary(names: tuple[str, ...], digests: tuple[str, ...]) -> ImageSummary:
    return ImageSummary("sha256:" + "1" * 64, names, 1000, "", "linux/amd64", digests)


def test_rows_as_docker_prints_them() -> None:
    image = summary(("docker.io/library/busybox:1", "docker.io/library/busybox:latest", "reg:5000/app:2"),
                    (f"docker.io/library/busybox@{A}", f"docker.io/library/busybox@{B}", f"reg:5000/other@{A}"))
    assert _image_rows([image], digests=True) == [
        ("busybox", "1", A, "111111111111", "1kB"), ("busybox", "1", B, "111111111111", "1kB"),
        ("busybox", "latest", A, "111111111111", "1kB"), ("busybox", "latest", B, "111111111111", "1kB"),
        ("reg:5000/app", "2", "<none>", "111111111111", "1kB"),
        ("reg:5000/other", "<none>", A, "111111111111", "1kB"),
    ]
    assert _image_rows([image]) == [
        ("busybox", "1", "111111111111", "1kB"), ("busybox", "latest", "111111111111", "1kB"),
        ("reg:5000/app", "2", "111111111111", "1kB"), ("reg:5000/other", "<none>", "111111111111", "1kB"),
    ]
    assert _image_rows([summary((), ())]) == [("<none>", "<none>", "111111111111", "1kB")]
