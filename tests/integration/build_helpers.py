"""Shared by the `isobox build` integration tests: small contexts written from a dict, built, then run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.conftest import Cli


def context(base: Path, files: dict[str, str | bytes], *, name: str = "ctx") -> Path:
    """A directory holding ``files`` (relative path → text or bytes)."""
    root = base / name
    root.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def build(cli: Cli, ctx: Path | str, *args: str, check: bool = True, input: bytes | None = None,
          timeout: float = 180) -> tuple[str, str]:
    """`isobox build --progress plain ARGS CTX`: (image id, the progress lines on stderr)."""
    iid = Path(cli.root) / "iid"
    iid.unlink(missing_ok=True)
    done = cli("build", "--progress", "plain", "--iidfile", str(iid), *args, str(ctx), input=input, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"build failed ({done.returncode}): {done.stderr}")
    image = iid.read_text() if done.returncode == 0 and iid.exists() else ""
    return image, done.stderr


def run(cli: Cli, image: str, *command: str) -> str:
    done = cli("run", "--rm", image, *command)
    assert done.returncode == 0, done.stderr
    return done.stdout


def image_document(cli: Cli, image: str) -> dict[str, Any]:
    """The image's config document (image-spec config.md), as the store keeps it."""
    from isobox.service.context import open_context

    ctx = open_context(cli.root)
    try:
        return ctx.images.config_document(ctx.images.resolve(image))
    finally:
        ctx.close()


def cached_steps(progress: str) -> list[int]:
    """The numbers of the steps the plain progress says came from the cache."""
    return [int(line.split()[0][1:]) for line in progress.splitlines() if line.startswith("#") and
            line.endswith(" CACHED")]


def ran_steps(progress: str) -> list[int]:
    """The numbers of the RUN steps that ran (the plain progress names their workload)."""
    return [int(line.split()[0][1:]) for line in progress.splitlines() if " running in " in line]
