"""The typer application: global options, each noun or verb group registering from its own module, and what
Docker's CLI does around them: `isobox help CMD`, `-v/--version`, the `container …` group, exit code 125 for
a command line isobox cannot parse (an unknown flag, a missing argument) with click's message."""

from __future__ import annotations

import logging
import os
import sys

import typer
import typer.core

from isobox import __version__
from isobox.cli import output

app = typer.Typer(
    name="isobox",
    help="Run any OCI image as a container or as a virtual machine.\n\n"
    "Examples:\n\n"
    "  isobox run --rm busybox echo hello\n\n"
    "  isobox run -d --vm --name vm1 busybox sleep 600\n\n"
    "  isobox ps -a\n\n"
    "  isobox help run",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[/tcp|udp]" in a flag's help is not markup
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        output.print_line(f"isobox version {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    state_root: str | None = typer.Option(
        None, "--root", envvar="ISOBOX_ROOT", help="Private state root (default /var/lib/isobox, /run/isobox).",
        metavar="DIR",
    ),
    debug: bool = typer.Option(False, "--debug", help="Log what isobox does."),
    version: bool = typer.Option(False, "-v", "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    if state_root:
        os.environ["ISOBOX_ROOT"] = state_root
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# Which modules register which top-level command. Every module is listed in MODULES; VERBS lets a command
# load only its own modules (the image commands alone import an HTTP stack), so `isobox run` starts faster.
# A verb missing here still works: then every module is registered.
MODULES = ("workloads", "ps", "stats", "inspect", "files", "update", "version", "images", "volumes", "system", "vm",
           "networks", "policy", "serve", "build", "events")
_WORKLOAD_MODULES = ("workloads", "ps", "stats", "inspect", "files", "update")
VERBS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("run", "create", "start", "stop", "kill", "attach", "pause", "unpause", "restart", "rm", "logs",
                     "exec", "wait", "commit", "rename"), ("workloads",)),
    **dict.fromkeys(("ps", "top", "port"), ("ps",)),
    "stats": ("stats",),
    "inspect": ("inspect",),
    **dict.fromkeys(("cp", "diff", "export"), ("files",)),
    "update": ("update",),
    "version": ("version",),
    "container": _WORKLOAD_MODULES,
    **dict.fromkeys(("pull", "push", "login", "logout", "images", "rmi", "tag", "image", "save", "load"), ("images",)),
    **dict.fromkeys(("vm", "console", "snapshot"), ("vm",)),
    "network": ("networks",),
    "volume": ("volumes",),
    **dict.fromkeys(("compare", "policy", "scan"), ("policy",)),
    "system": ("system",),
    "info": ("system",),
    "serve": ("serve",),
    "events": ("events",),
    **dict.fromkeys(("build", "builder"), ("build",)),
}
_GLOBAL_OPTIONS_WITH_VALUE = ("--root",)
EXIT_USAGE = 125  # Docker's CLI: the command line itself is wrong


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

    verb = _verb(argv) or ""
    wanted = VERBS.get(verb) or MODULES
    container = None
    if verb == "container" or wanted is MODULES:
        container = typer.Typer(help="Manage workloads (containers and VMs): the same commands as at the top "
                                     "level, with ls for ps.", no_args_is_help=True)
        app.add_typer(container, name="container")
    for name in wanted:
        try:
            module = importlib.import_module(f"isobox.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"isobox.cli.{name}":
                raise
            continue  # a subsystem whose commands are not part of this build
        module.register(app)
        if container is not None and hasattr(module, "register_container"):
            module.register_container(container)


def _help_request(argv: list[str]) -> list[str]:
    """`isobox help`, `isobox help image ls` → the same command line with --help, as docker help does."""
    verb = _verb(argv)
    if verb != "help":
        return argv
    index = argv.index("help")
    return argv[:index] + argv[index + 1:] + ["--help"]


def plain_help(command: typer.core.TyperCommand | typer.core.TyperGroup) -> None:
    """Help as a reader wants it: no Python types (`<list[str]>`) but a word for each value, and each command's
    description whole in its group's list (click cuts it at 45 characters with "...")."""
    for param in command.params:
        if isinstance(param, typer.core.TyperOption) and not param.is_flag and param.metavar is None:
            param.metavar = "VALUE" if param.nargs == 1 else "VALUE..."
        elif isinstance(param, typer.core.TyperArgument):
            if param.metavar is None:
                param.metavar = param.name.upper() if param.name else "ARG"
            # typer follows an argument's name with its Python type ("IMAGE <str>"): the name says enough.
            setattr(param, "display_type_rich", lambda ctx: None)  # noqa: B010
    if command.short_help is None and command.help:
        first = command.help.strip().split("\n\n", 1)[0]
        command.short_help = " ".join(first.split())
    if isinstance(command, typer.core.TyperGroup):
        for sub in command.commands.values():
            if isinstance(sub, typer.core.TyperCommand | typer.core.TyperGroup):
                plain_help(sub)


def run_app(argv: list[str]) -> None:
    argv = _help_request(argv)
    _register(argv)
    command = typer.main.get_command(app)
    if isinstance(command, typer.core.TyperCommand | typer.core.TyperGroup):
        plain_help(command)
    try:
        code = command.main(args=argv, prog_name="isobox", standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("\n")
        raise SystemExit(130) from None
    except typer.TyperException as exc:  # an unknown flag, a missing argument, a bad value: Docker's 125
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"isobox: {exc.format_message()}\n")
        raise SystemExit(EXIT_USAGE) from None
    raise SystemExit(code if isinstance(code, int) else 0)
