"""What `isobox build` does once its flags are read, shared by the typer command (cli/build.py) and the fast
path (cli/build_fast.py), so both mean the same. Nothing here imports typer.

The context is a directory, or ``-`` (a tar archive, or a lone Dockerfile, on stdin); ``-f -`` reads the
Dockerfile from stdin. Progress goes to stderr; stdout gets only the image id, with ``-q``. A failed
build exits with 1, as docker build does. SOURCE_DATE_EPOCH in the environment is passed on as the
build arg of that name (unless ``--build-arg`` gives it). SIGTERM ends a build as Ctrl-C does.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from isobox.errors import InvalidArgumentError, IsoboxError

EXIT_BUILD_FAILED = 1
PROGRESS_MODES = ("auto", "plain", "tty")
NETWORKS = ("default", "none")


@dataclass(frozen=True)
class BuildFlags:
    """docker build's flags, as the command line gives them."""

    path: str
    tag: list[str] = field(default_factory=list)
    file: str | None = None
    build_arg: list[str] = field(default_factory=list)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    label: list[str] = field(default_factory=list)
    platform: str | None = None
    quiet: bool = False
    iidfile: str | None = None
    network: str = "default"
    secret: list[str] = field(default_factory=list)
    progress: str = "auto"
    vm: bool = False


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


def _stdin_to_file() -> Path:
    handle, name = tempfile.mkstemp(prefix="isobox-build-context-", suffix=".tar")
    with os.fdopen(handle, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, 1024 * 1024)
    return Path(name)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_build(flags: BuildFlags) -> int:
    """Build as the flags say; the exit code (a failure's message is printed here)."""
    staged: Path | None = None
    try:
        if flags.progress not in PROGRESS_MODES:
            raise InvalidArgumentError(f"invalid --progress {flags.progress!r}: use auto, plain or tty", op="build")
        if flags.network not in NETWORKS:
            raise InvalidArgumentError(f"invalid --network {flags.network!r}: use default or none", op="build")
        if flags.path == "-" and flags.file == "-":
            raise InvalidArgumentError("the context and the Dockerfile cannot both come from stdin", op="build")
        from isobox.builder.options import BuildNetwork, BuildOptions, parse_secret
        from isobox.model.spec import parse_labels

        dockerfile_text = sys.stdin.read() if flags.file == "-" else None
        if flags.path == "-":
            staged = _stdin_to_file()
        options = BuildOptions(
            context_dir=None if flags.path == "-" else Path(flags.path), context_tar=staged,
            dockerfile=None if flags.file == "-" else flags.file, dockerfile_text=dockerfile_text,
            tags=tuple(flags.tag), build_args=build_args(flags.build_arg), target=flags.target,
            no_cache=flags.no_cache, pull=flags.pull, labels=parse_labels(flags.label), platform=flags.platform,
            network=BuildNetwork(flags.network), secrets=tuple(parse_secret(text) for text in flags.secret),
            vm=flags.vm, quiet=flags.quiet,
        )
        image_id = _build(options, flags.progress)
    except IsoboxError as exc:
        from isobox.cli import output

        output.fail(str(exc), EXIT_BUILD_FAILED)
        return EXIT_BUILD_FAILED
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    if flags.iidfile is not None:
        Path(flags.iidfile).write_text(image_id)
    if flags.quiet:
        sys.stdout.write(image_id + "\n")
        sys.stdout.flush()
    return 0


def _build(options: object, progress: str) -> str:
    from isobox.builder.options import BuildOptions
    from isobox.cli import build_progress
    from isobox.service import build as service
    from isobox.service.context import open_context

    assert isinstance(options, BuildOptions)
    signal.signal(signal.SIGTERM, _interrupt)
    display = build_progress.make(progress, options.quiet)
    # Not closed: the process ends (os._exit, see cli/main.py) once the build has committed its records;
    # closing would only add SQLite's checkpoint to every build.
    ctx = open_context()
    try:
        return service.build(ctx, options, progress=display).image_id
    finally:
        if display is not None:
            display.close()
