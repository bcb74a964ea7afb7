"""The image build functions of the Python API (see isobox/__init__.py): `build` and `builder_prune`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from isobox.builder.events import ProgressFn
from isobox.builder.outcome import BuildResult
from isobox.pyapi._context import Root, context


def build(
    path: str | os.PathLike[str] | None = ".",
    *,
    tags: Sequence[str] = (),
    dockerfile: str | os.PathLike[str] | None = None,
    dockerfile_text: str | None = None,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    no_cache: bool = False,
    pull: bool = False,
    labels: Mapping[str, str] | None = None,
    platform: str | None = None,
    network: str = "default",
    secrets: Mapping[str, str | os.PathLike[str]] | None = None,
    vm: bool = False,
    progress: ProgressFn | None = None,
    root: Root = None,
) -> BuildResult:
    """Build an image from a Dockerfile, as `isobox build` does.

    ``path`` is the build context (a directory; None: no context, with ``dockerfile_text``);
    ``dockerfile`` a path (default PATH/Dockerfile) or ``dockerfile_text`` the Dockerfile itself;
    ``secrets`` maps secret ids to files (for RUN --mount=type=secret); ``network`` is "default" or
    "none"; ``vm=True`` runs every RUN step in a VM; ``progress`` receives a BuildEvent per step, output
    line and result. SOURCE_DATE_EPOCH is taken from ``build_args`` only.

    >>> result = isobox.build("app", tags=["app:1"], build_args={"VERSION": "2"})  # doctest: +SKIP
    >>> result.image_id, result.cached_steps                                       # doctest: +SKIP
    ('sha256:…', 3)
    """
    from isobox.builder.options import BuildNetwork, BuildOptions, parse_secret
    from isobox.service import build as service

    options = BuildOptions(
        context_dir=Path(path) if path is not None else None,
        dockerfile=os.fspath(dockerfile) if dockerfile is not None else None,
        dockerfile_text=dockerfile_text,
        tags=tuple(tags),
        build_args=tuple((build_args or {}).items()),
        target=target,
        no_cache=no_cache,
        pull=pull,
        labels=tuple((labels or {}).items()),
        platform=platform,
        network=BuildNetwork(network),
        secrets=tuple(parse_secret(f"id={name},src={os.fspath(source)}") for name, source in (secrets or {}).items()),
        vm=vm,
    )
    with context(root) as ctx:
        return service.build(ctx, options, progress=progress)


def builder_prune(*, root: Root = None) -> int:
    """Remove the build cache (records, the layers only it kept, cache mounts); the bytes it held."""
    from isobox.service import build as service

    with context(root) as ctx:
        report = service.prune(ctx)
        return report.size_bytes if report is not None else 0
