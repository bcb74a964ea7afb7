"""`isobox build` (docker build's flags) and `isobox builder prune`, as typer commands.

The build's logic is in cli/build_command.py, which cli/build_fast.py calls too: a plain `isobox build`
is parsed there, without typer (about 150 ms of start-up a rebuild from the cache would otherwise pay).
"""

from __future__ import annotations

import typer

from isobox.cli import output
from isobox.cli.build_command import BuildFlags, run_build


def register(app: typer.Typer) -> None:
    app.command("build")(build)
    builder = typer.Typer(help="Manage the build cache.", no_args_is_help=True)
    app.add_typer(builder, name="builder")
    builder.command("prune")(prune)


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
    iidfile: str | None = typer.Option(None, "--iidfile", help="Write the image id to this file."),
    network: str = typer.Option("default", "--network", help="The network of RUN steps: default or none."),
    secret: list[str] = typer.Option([], "--secret", help="A secret for RUN --mount=type=secret: id=ID,src=PATH."),
    progress: str = typer.Option("auto", "--progress", help="auto, plain (lines) or tty (a live view)."),
    vm: bool = typer.Option(False, "--vm", help="Run every RUN step in a VM instead of a container."),
) -> None:
    """Build an image from a Dockerfile.

    Example: isobox build -t localhost/app:1 --build-arg VERSION=2 .   (add --vm to run the RUN steps in VMs)"""
    code = run_build(BuildFlags(path, list(tag), file, list(build_arg), target, no_cache, pull, list(label), platform,
                                quiet, iidfile, network, list(secret), progress, vm))
    if code:
        raise typer.Exit(code)


def prune(
    all_: bool = typer.Option(False, "--all", "-a", help="Everything (the default too: the whole cache goes)."),
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation."),
) -> None:
    """Remove the build cache: its records, the layers only it kept, and the cache mounts.

    Example: isobox builder prune -f"""
    from isobox.cli.confirm import confirm
    from isobox.cli.tables import human_size
    from isobox.service import build as service
    from isobox.service.context import open_context

    if not force:
        confirm("This will remove all build cache.")
    with open_context() as ctx:
        report = service.prune(ctx)
    assert report is not None  # waited for running builds
    output.out.print(f"Deleted {report.entries} build cache entries ({report.layers} layers)")
    output.out.print(f"Total reclaimed space: {human_size(report.size_bytes)}")
