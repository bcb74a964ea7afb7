"""The typer application: global options, and each noun or verb group registering from its own module."""

from __future__ import annotations

import logging
import os

import typer

from isobox import __version__
from isobox.cli import output

app = typer.Typer(
    name="isobox",
    help="Run any OCI image as a container or as a virtual machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[/tcp|udp]" in a flag's help is not markup
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        output.out.print(f"isobox {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    state_root: str | None = typer.Option(
        None, "--root", envvar="ISOBOX_ROOT", help="Private state root (default /var/lib/isobox, /run/isobox)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Log what isobox does."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    if state_root:
        os.environ["ISOBOX_ROOT"] = state_root
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# Which module registers which top-level command. Every module is listed in MODULES; VERBS lets a
# command load only its own module (the image commands alone import an HTTP stack), so `isobox run`
# starts faster. A verb missing here still works: then every module is registered.
MODULES = ("workloads", "images", "volumes", "system", "vm", "networks", "policy", "serve", "events")
VERBS = {
    **dict.fromkeys(
        (
            "run",
            "create",
            "start",
            "stop",
            "kill",
            "attach",
            "pause",
            "unpause",
            "restart",
            "rm",
            "ps",
            "logs",
            "exec",
            "wait",
            "top",
            "stats",
            "commit",
        ),
        "workloads",
    ),
    **dict.fromkeys(("pull", "push", "login", "logout", "images", "rmi", "tag", "image", "save", "load"), "images"),
    **dict.fromkeys(("vm", "console", "snapshot"), "vm"),
    "network": "networks",
    "volume": "volumes",
    **dict.fromkeys(("compare", "policy", "scan"), "policy"),
    "system": "system",
    "info": "system",
    "serve": "serve",
    "events": "events",
}
_GLOBAL_OPTIONS_WITH_VALUE = ("--root",)


def _verb(argv: list[str]) -> str | None:
    """The first command word of argv, skipping global options."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _register(argv: list[str]) -> None:
    import importlib

    wanted = VERBS.get(_verb(argv) or "")
    for name in (wanted,) if wanted else MODULES:
        try:
            module = importlib.import_module(f"isobox.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"isobox.cli.{name}":
                raise
            continue  # a subsystem whose commands are not part of this build
        module.register(app)


def run_app(argv: list[str]) -> None:
    _register(argv)
    app(args=argv, prog_name="isobox")
