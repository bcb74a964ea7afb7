"""Image commands that speak to registries: pull, push, login, logout (the store's commands are in
image_store.py), and the `image` group, which holds them all as Docker's does.

Each command translates its flags into one call of isobox.service.images and prints the result.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from isobox.cli import output
from isobox.errors import InvalidArgumentError
from isobox.images.pull import PullEvent, Stage
from isobox.images.push import PushedBlob
from isobox.images.reference import parse as parse_reference
from isobox.service import images as service
from isobox.service.context import Context, open_context

if TYPE_CHECKING:
    from rich.progress import TaskID

INSECURE_HELP = "An insecure registry: HTTPS without verifying its certificate, or plain HTTP if it has no TLS."
CA_HELP = "Trust this CA bundle for the registry (default: ISOBOX_CA, LIB/certs.d/HOST/*.crt)."
JSON_HELP = "Print JSON."


@contextmanager
def _context() -> Iterator[Context]:
    ctx = open_context()
    try:
        yield ctx
    finally:
        ctx.close()


def human_size(size: int) -> str:
    """Decimal units, as Docker prints image sizes."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{value:.3g}TB"


class PullDisplay:
    """One progress bar per layer (rich, on stderr), fed from the pull's worker threads."""

    def __init__(self) -> None:
        # Imported here: `pull -q` and pulls without a terminal never draw, and rich.progress costs ~20 ms.
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=output.err.get(), transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def __call__(self, event: PullEvent) -> None:
        if not event.digest or event.stage in (Stage.RESOLVED, Stage.DONE):
            return
        with self.lock:
            task = self.tasks.get(event.digest)
            if task is None:
                label = event.digest.split(":", 1)[-1][:12]
                task = self.tasks[event.digest] = self.progress.add_task(label, total=event.total or None)
        state = {Stage.DOWNLOADED: " unpacking", Stage.UNPACKED: " done"}.get(event.stage, "")
        self.progress.update(task, completed=event.current, total=event.total or None,
                             description=event.digest.split(":", 1)[-1][:12] + state)


def register(app: typer.Typer) -> None:
    from isobox.cli import image_store

    image = typer.Typer(help="Manage images: the image commands, with ls for images and rm for rmi.",
                        no_args_is_help=True)
    app.add_typer(image, name="image")
    for group, commands in ((app, (("pull", pull), ("push", push))), (image, (("pull", pull), ("push", push)))):
        for name, function in commands:
            group.command(name)(function)
    app.command("login")(login)
    app.command("logout")(logout)
    image_store.register(app, image)
    from isobox.cli.policy import scan

    image.command("scan")(scan)


def pull(
    name: str = typer.Argument(..., help="Image reference, e.g. busybox or registry:5000/repo:tag."),
    platform: str | None = typer.Option(None, "--platform", help="os/arch[/variant], default: this host."),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    ca_cert: Path | None = typer.Option(None, "--ca-cert", help=CA_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image id."),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Pull an image from a registry."""
    from isobox.errors import ImagePullError, NotFoundError
    from isobox.service import pulling

    display = None if quiet or json_output or not output.err.is_terminal else PullDisplay()
    with _context() as ctx:
        try:
            if display is None:
                record = service.pull(ctx, name, platform=platform, insecure=insecure, ca_cert=ca_cert)
            else:
                with display.progress:
                    record = service.pull(ctx, name, platform=platform, insecure=insecure, ca_cert=ca_cert,
                                          progress=display)
        except (ImagePullError, NotFoundError) as exc:
            raise pulling.failure(exc, name) from exc
    if json_output:
        output.print_json(record)
    elif quiet:
        output.out.print(record.id)
    else:
        output.out.print(f"{parse_reference(name)}: {record.id} ({record.platform}, {len(record.layers)} layers)")


def push(
    source: str = typer.Argument(..., help="Image in the store."),
    target: str | None = typer.Argument(None, help="Where to push (default: the source's name)."),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    ca_cert: Path | None = typer.Option(None, "--ca-cert", help=CA_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the manifest digest."),
) -> None:
    """Push an image to a registry.

    Blobs the registry already has are skipped or mounted."""

    def report(blob: PushedBlob) -> None:
        if not quiet:
            output.err.print(f"{blob.digest.split(':', 1)[-1][:12]}: {blob.how}")

    with _context() as ctx:
        digest = service.push(ctx, source, target, insecure=insecure, ca_cert=ca_cert, progress=report)
    output.out.print(digest if quiet else f"{target or source}: digest {digest}")


def login(
    registry: str = typer.Argument(..., help="Registry host[:port]."),
    username: str | None = typer.Option(None, "--username", "-u", help="User name (prompted if absent)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    ca_cert: Path | None = typer.Option(None, "--ca-cert", help=CA_HELP),
) -> None:
    """Log in to a registry.

    Checks the credentials against the registry, then stores them (LIB/auth.json, mode 0600)."""
    user = username or typer.prompt("Username")
    # --password-stdin keeps the password out of the shell history and the process list.
    password = sys.stdin.read().rstrip("\r\n") if password_stdin else typer.prompt("Password", hide_input=True)
    if not password:
        raise InvalidArgumentError("empty password", op="login", id=registry)
    with _context() as ctx:
        service.login(ctx, registry, user, password, insecure=insecure, ca_cert=ca_cert)
    output.out.print("Login succeeded")


def logout(registry: str = typer.Argument(..., help="Registry host[:port].")) -> None:
    """Forget the credentials isobox stored for a registry."""
    with _context() as ctx:
        removed = service.logout(ctx, registry)
    output.out.print(f"Removed login credentials for {registry}" if removed else f"Not logged in to {registry}")
