"""The build cache: a rebuild without change reuses every step (same image), a changed file rebuilds from its
COPY on and a changed build arg from its first use, --no-cache builds again, and the cache's layers
outlive their images until `builder prune` (which `system df` accounts for)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.integration.build_helpers import build, cached_steps, context, ran_steps, run
from tests.integration.conftest import Cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STEPS = (
    "FROM busybox\n"
    "RUN echo one > /one\n"
    "COPY a.txt /a.txt\n"
    "RUN cat /a.txt > /seen-a\n"
    "COPY b.txt /b.txt\n"
    "RUN cat /b.txt > /seen-b\n"
)


def test_a_changed_file_rebuilds_from_its_copy_on(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"a.txt": "a1\n", "b.txt": "b1\n", "Dockerfile": STEPS})
    first, progress = build(cli, ctx)
    assert cached_steps(progress) == [] and ran_steps(progress) == [2, 4, 6]
    again, progress = build(cli, ctx)
    assert again == first and cached_steps(progress) == [2, 3, 4, 5, 6] and ran_steps(progress) == []
    (ctx / "b.txt").write_text("b2\n")
    changed_b, progress = build(cli, ctx)
    assert cached_steps(progress) == [2, 3, 4] and ran_steps(progress) == [6]
    assert run(cli, changed_b, "cat", "/seen-a", "/seen-b") == "a1\nb2\n"
    (ctx / "a.txt").write_text("a2\n")
    _, progress = build(cli, ctx)
    assert cached_steps(progress) == [2] and ran_steps(progress) == [4, 6]
    (ctx / "a.txt").chmod(0o600)  # the mode is part of what COPY reads
    _, progress = build(cli, ctx)
    assert cached_steps(progress) == [2] and ran_steps(progress) == [4, 6]
    (ctx / "a.txt").touch()  # a new time alone changes nothing
    _, progress = build(cli, ctx)
    assert ran_steps(progress) == []


def test_a_changed_build_arg_rebuilds_from_its_first_use(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "FROM busybox\n"
        "RUN echo before > /before\n"
        "ARG V=1\n"
        'RUN echo "$V" > /v\n'
        "RUN echo after > /after\n")})
    first, _ = build(cli, ctx)
    second, progress = build(cli, ctx, "--build-arg", "V=2")
    assert cached_steps(progress) == [2] and ran_steps(progress) == [4, 5]
    assert run(cli, second, "cat", "/v") == "2\n"
    back, progress = build(cli, ctx, "--build-arg", "V=1")
    assert back == first and ran_steps(progress) == []
    unused, progress = build(cli, ctx, "--build-arg", "OTHER=x")
    assert unused == first and "OTHER" in progress  # a build arg no ARG declares: a warning, no miss


def test_no_cache_builds_again(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN head -c 8 /dev/urandom | od -An -tx1 > /random\n"})
    first, _ = build(cli, ctx)
    fresh, progress = build(cli, ctx, "--no-cache")
    assert ran_steps(progress) == [2] and fresh != first
    again, progress = build(cli, ctx)
    assert again == fresh and ran_steps(progress) == []  # the newest result is the one found


def _df_row(cli: Cli) -> dict[str, object]:
    rows = json.loads(cli("system", "df", "--json", check=True).stdout)
    return next(row for row in rows if row["kind"].startswith("build cache"))


def test_cache_outlives_images_until_builder_prune(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "FROM busybox\n"
        "RUN --mount=type=cache,target=/c sh -c 'head -c 200000 /dev/zero > /c/blob; echo x > /x'\n")})
    image, _ = build(cli, ctx, "-t", "cached:1")
    cli("rmi", "cached:1", check=True)
    cli("image", "prune", "-f", check=True)
    row = _df_row(cli)
    assert row["count"] == 1 and isinstance(row["size_bytes"], int) and row["size_bytes"] > 200000
    again, progress = build(cli, ctx)
    assert again == image and ran_steps(progress) == []  # its layer survived the image's removal
    pruned = cli("builder", "prune", "-f", check=True).stdout
    assert "Total reclaimed space" in pruned
    assert _df_row(cli)["count"] == 0 and not (Path(cli.root) / "lib" / "build-cache" / "mounts").exists()
    _, progress = build(cli, ctx)
    assert ran_steps(progress) == [2]
    cli("system", "prune", "-a", "-f", check=True)
    assert _df_row(cli)["count"] == 0


def test_a_remembered_build_follows_its_base_image(cli: Cli, tmp_path: Path) -> None:
    """A rebuild of unchanged inputs is answered whole, with the same progress lines; when the base image's
    name moves to another image, the build is done again on the new one."""
    base = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo one > /base\n"}, name="base")
    build(cli, base, "-t", "localhost/base:1")
    app = context(tmp_path, {"Dockerfile": "FROM localhost/base:1\nRUN cat /base > /seen\n"}, name="app")
    first, progress = build(cli, app)
    again, replayed = build(cli, app)
    assert again == first and ran_steps(replayed) == [] and cached_steps(replayed) == [2]
    assert [line for line in replayed.splitlines() if line.startswith("#")] == [
        "#1 [1/2] FROM localhost/base:1", "#1 DONE 0.0s", "#2 [2/2] RUN cat /base > /seen", "#2 CACHED"]
    (base / "Dockerfile").write_text("FROM busybox\nRUN echo two > /base\n")
    build(cli, base, "-t", "localhost/base:1")
    moved, progress = build(cli, app)
    assert moved != first and ran_steps(progress) == [2] and run(cli, moved, "cat", "/seen") == "two\n"
