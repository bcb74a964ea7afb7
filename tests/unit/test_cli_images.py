"""`isobox images` rows (cli/rows.py): tags, RepoDigests with --digests, digest-only repositories."""

from __future__ import annotations

from isobox.cli.rows import image_rows

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
ID = "sha256:" + "1" * 64
NOW = 1_700_000_000.0


def rows(names: tuple[str, ...], digests: tuple[str, ...], *, with_digests: bool = False) -> list[tuple[str, ...]]:
    found = image_rows(ID, names, digests, size_bytes=1000, created_s=int(NOW) - 7200, platform="linux/amd64",
                       now_s=NOW, digests=with_digests)
    if with_digests:
        return [(r.Repository, r.Tag, r.Digest, r.ID, r.Size) for r in found]
    return [(r.Repository, r.Tag, r.ID, r.Size) for r in found]


def test_rows_as_docker_prints_them() -> None:
    names = ("docker.io/library/busybox:1", "docker.io/library/busybox:latest", "reg:5000/app:2")
    digests = (f"docker.io/library/busybox@{A}", f"docker.io/library/busybox@{B}", f"reg:5000/other@{A}")
    assert rows(names, digests, with_digests=True) == [
        ("busybox", "1", A, "111111111111", "1kB"), ("busybox", "1", B, "111111111111", "1kB"),
        ("busybox", "latest", A, "111111111111", "1kB"), ("busybox", "latest", B, "111111111111", "1kB"),
        ("reg:5000/app", "2", "<none>", "111111111111", "1kB"),
        ("reg:5000/other", "<none>", A, "111111111111", "1kB"),
    ]
    assert rows(names, digests) == [
        ("busybox", "1", "111111111111", "1kB"), ("busybox", "latest", "111111111111", "1kB"),
        ("reg:5000/app", "2", "111111111111", "1kB"), ("reg:5000/other", "<none>", "111111111111", "1kB"),
    ]
    assert rows((), ()) == [("<none>", "<none>", "111111111111", "1kB")]


def test_created_since_and_no_time() -> None:
    first = image_rows(ID, ("busybox:latest",), (), size_bytes=4_261_888, created_s=int(NOW) - 7200,
                       platform="linux/amd64", now_s=NOW)[0]
    assert (first.CreatedSince, first.Size) == ("2 hours ago", "4.26MB")
    never = image_rows(ID, ("busybox:latest",), (), size_bytes=1, created_s=0, platform="", now_s=NOW)[0]
    assert never.CreatedSince == "" and never.CreatedAt == ""
