"""Entry point of the `isobox` command. Each noun or verb group lives in its own module and registers here."""

from __future__ import annotations

import logging
import os
import sys

import typer

from isobox import __version__
from isobox.cli import output
from isobox.errors import IsoboxError

app = typer.Typer(
    name="isobox",
    help="Run any OCI image as a container or as a virtual machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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


def _register() -> None:
    # Each module adds its commands to `app`; importing them here keeps this file the only wiring.
    from isobox.cli import images, system, volumes, workloads

    for module in (workloads, images, volumes, system):
        module.register(app)
    try:
        from isobox.cli import vm
    except ImportError:  # the VM commands arrive with the VM driver
        return
    vm.register(app)


def main() -> None:
    _register()
    try:
        app()
    except IsoboxError as exc:
        output.fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
