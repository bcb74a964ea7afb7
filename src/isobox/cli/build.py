"""`isobox build` (docker build's flags) and `isobox builder prune`.

The context is a directory, or ``-`` (a tar archive, or a lone Dockerfile, on stdin); ``-f -`` reads the
Dockerfile from stdin. Progress goes to stderr; stdout gets only the image id, with ``-q``. A failed
build exits with 1, as docker build does. SOURCE_DATE_EPOCH in the environment is passed on as the
build arg of that name (unless ``--build-arg`` gives it).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import typer

from isobox.cli import output
from isobox.errors import InvalidArgumentError, IsoboxError

EXIT_BUILD_FAILED = 1


def register(app: typer.Typer) -> None:
    app.command("build")(build)
    builder = typer.Typer(help="Manage the build cache.", no_args_is_help=True)
    app.add_typer(builder, name="builder")
    builder.command("prune")(prune)


def build_args(items: list[str]) -> tuple[tuple[str, str], ...]:
    """--build-arg KEY=VALUE, or KEY alone for the value of the environment (skipped when unset)."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgumentError(f"invalid --build-arg {item!r}: use KEY=VALUE", op="parse --build-arg")
        if sep:
            found[key] = value
        elif key in os.environ:
            found[key] = os.environ[key]
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and "SOURCE_DATE_EPOCH" not in found:
        found["SOURCE_DATE_EPOCH"] = epoch
    return tuple(found.items())


def _labels(items: list[str]) -> tuple[tuple[str, str], ...]:
    from isobox.model.spec import parse_labels

    return parse_labels(items)


def _stdin_to_file() -> Path:
    handle, name = tempfile.mkstemp(prefix="isobox-build-context-", suffix=".tar")
    with os.fdopen(handle, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, 1024 * 1024)
    return Path(name)


def _interrupt_on_sigterm() -> None:
    """SIGTERM ends the build as Ctrl-C does: its steps removed, nothing tagged."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def build(
    path: str = typer.Argument(..., help="The build context: a directory, or - for a tar (or a Dockerfile) on stdin."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Name the image (name:tag); may be given several times."),
    file: str | None = typer.Option(None, "--file", "-f", help="The Dockerfile (default PATH/Dockerfile, - is stdin)."),
    build_arg: list[str] = typer.Option([], "--build-arg", help="Set a build-time variable (KEY=VALUE)."),
    target: str | None = typer.Option(None, "--target", help="Build this stage (and what it needs) only."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Build every step again (the results are cached)."),
    pull: bool = typer.Option(False, "--pull", help="Pull the base images again, even if the store has them."),
    label: list[str] = typer.Option([], "--label", help="Set a label on the image (KEY=VALUE)."),
    platform: str | None = typer.Option(None, "--platform", help="The target platform: this host's only."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image id."),
    iidfile: Path | None = typer.Option(None, "--iidfile", help="Write the image id to this file."),
    network: str = typer.Option("default", "--network", help="The network of RUN steps: default or none."),
    secret: list[str] = typer.Option([], "--secret", help="A secret for RUN --mount=type=secret: id=ID,src=PATH."),
    progress: str = typer.Option("auto", "--progress", help="auto, plain (lines) or tty (a live view)."),
    vm: bool = typer.Option(False, "--vm", help="Run every RUN step in a VM instead of a container."),
) -> None:
    """Build an image from a Dockerfile."""
    from isobox.builder.options import BuildNetwork, BuildOptions, parse_secret
    from isobox.cli import build_progress

    staged: Path | None = None
    display = None
    try:
        if progress not in ("auto", "plain", "tty"):
            raise InvalidArgumentError(f"invalid --progress {progress!r}: use auto, plain or tty", op="build")
        if network not in ("default", "none"):
            raise InvalidArgumentError(f"invalid --network {network!r}: use default or none", op="build")
        if path == "-" and file == "-":
            raise InvalidArgumentError("the context and the Dockerfile cannot both come from stdin", op="build")
        dockerfile_text = sys.stdin.read() if file == "-" else None
        if path == "-":
            staged = _stdin_to_file()
        options = BuildOptions(
            context_dir=None if path == "-" else Path(path), context_tar=staged,
            dockerfile=None if file == "-" else file, dockerfile_text=dockerfile_text, tags=tuple(tag),
            build_args=build_args(build_arg), target=target, no_cache=no_cache, pull=pull, labels=_labels(label),
            platform=platform, network=BuildNetwork(network), secrets=tuple(parse_secret(s) for s in secret),
            vm=vm, quiet=quiet,
        )
        from isobox.service import build as service
        from isobox.service.context import open_context

        _interrupt_on_sigterm()
        display = build_progress.make(progress, quiet)
        with open_context() as ctx:
            try:
                result = service.build(ctx, options, progress=display)
            finally:
                if display is not None:
                    display.close()
                    display = None
    except IsoboxError as exc:
        output.fail(str(exc), EXIT_BUILD_FAILED)
        return
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    if iidfile is not None:
        iidfile.write_text(result.image_id)
    if quiet:
        output.print_line(result.image_id)


def prune(
    all_: bool = typer.Option(False, "--all", "-a", help="Everything (the default: the whole cache goes)."),
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask (isobox never asks)."),
) -> None:
    """Remove the build cache: its records, the layers only it kept, and the cache mounts."""
    from isobox.cli.system import _size
    from isobox.service import build as service
    from isobox.service.context import open_context

    with open_context() as ctx:
        report = service.prune(ctx)
    assert report is not None  # waited for running builds
    output.out.print(f"removed {report.entries} cache entries ({report.layers} layers)")
    output.out.print(f"Total reclaimed space: {_size(report.size_bytes)}")
