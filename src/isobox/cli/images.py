"""Image commands: pull, push, images, rmi, tag, image inspect/history/prune, save, load, login, logout.

Each command translates its flags into one call of isobox.service.images and prints the result.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
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
from isobox.service.images import ImageSummary

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
    image = typer.Typer(help="Manage images.", no_args_is_help=True)
    app.add_typer(image, name="image")
    app.command("pull")(pull)
    app.command("push")(push)
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("images")(images)
    app.command("rmi")(rmi)
    app.command("tag")(tag)
    image.command("inspect")(inspect)
    image.command("history")(history)
    image.command("prune")(prune)
    from isobox.cli.policy import scan

    image.command("scan")(scan)
    app.command("save")(save)
    app.command("load")(load)


def pull(
    name: str = typer.Argument(..., help="Image reference, e.g. busybox or registry:5000/repo:tag."),
    platform: str | None = typer.Option(None, "--platform", help="os/arch[/variant], default: this host."),
    insecure: bool = typer.Option(False, "--insecure", help=INSECURE_HELP),
    ca_cert: Path | None = typer.Option(None, "--ca-cert", help=CA_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image id."),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Pull an image from a registry."""
    display = None if quiet or json_output or not output.err.is_terminal else PullDisplay()
    with _context() as ctx:
        if display is None:
            record = service.pull(ctx, name, platform=platform, insecure=insecure, ca_cert=ca_cert)
        else:
            with display.progress:
                record = service.pull(ctx, name, platform=platform, insecure=insecure, ca_cert=ca_cert,
                                      progress=display)
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
    """Push an image to a registry (blobs it already has are skipped or mounted)."""

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
    """Check credentials against a registry and store them (LIB/auth.json, mode 0600)."""
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


def images(
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only image ids."),
    digests: bool = typer.Option(False, "--digests", help="Show the digests images were pulled or pushed by."),
) -> None:
    """List the images in the store."""
    with _context() as ctx:
        found = service.list_images(ctx)
    headers = ("REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "SIZE") if digests else ("REPOSITORY", "TAG", "IMAGE ID",
                                                                                   "SIZE")
    output.print_listing(
        found,
        json_output=json_output,
        quiet=quiet,
        name=lambda summary: summary.short_id,
        headers=headers,
        rows=lambda listed: _image_rows(listed, digests=digests),
    )


def _image_rows(found: Sequence[ImageSummary], *, digests: bool = False) -> list[tuple[str, ...]]:
    """Rows as Docker's `images` prints them: one per tag (times each digest of that repository with
    --digests), then the repositories an image has only digests in, with <none> as their tag."""
    rows: list[tuple[str, ...]] = []
    for summary in found:
        by_repository: dict[str, list[str]] = {}
        for text in summary.repo_digests:
            repository, _, digest = parse_reference(text).familiar().partition("@")
            by_repository.setdefault(repository, []).append(digest)
        pairs: list[tuple[str, str, str]] = []
        for name in summary.names:
            repository, tag = _split_name(name)
            pairs += [(repository, tag, digest) for digest in (by_repository.get(repository) or ["<none>"])]
        tagged = {repository for repository, _, _ in pairs}
        pairs += [(repository, "<none>", digest) for repository, listed in by_repository.items()
                  if repository not in tagged for digest in listed]
        if not pairs:
            pairs = [("<none>", "<none>", "<none>")]
        size = human_size(summary.size)
        if digests:
            rows += [(repository, tag, digest, summary.short_id, size) for repository, tag, digest in pairs]
        else:
            rows += [(repository, tag, summary.short_id, size)
                     for repository, tag in dict.fromkeys((repository, tag) for repository, tag, _ in pairs)]
    return rows


def rmi(
    names: list[str] = typer.Argument(..., help="Image names or ids."),
    force: bool = typer.Option(False, "--force", "-f", help="Remove all names of the image, even if in use."),
) -> None:
    """Remove images (a name of an image with several names is only untagged)."""
    with _context() as ctx:
        for name in names:
            for line in service.remove(ctx, name, force=force):
                output.out.print(line)


def tag(source: str = typer.Argument(...), target: str = typer.Argument(...)) -> None:
    """Give an image another name."""
    with _context() as ctx:
        service.tag(ctx, source, target)


def inspect(name: str = typer.Argument(..., help="Image name or id.")) -> None:
    """Print an image's record, names and configuration as JSON."""
    with _context() as ctx:
        output.print_json(service.inspect(ctx, name))


def history(name: str = typer.Argument(...), json_output: bool = typer.Option(False, "--json", help=JSON_HELP)
            ) -> None:
    """Show how an image was built, newest step first."""
    with _context() as ctx:
        steps = service.history(ctx, name)
    if json_output:
        output.print_json(steps)
        return
    rows = [(s.created or "<missing>", s.created_by[:80], human_size(s.size), s.comment) for s in steps]
    output.print_table(("CREATED", "CREATED BY", "SIZE", "COMMENT"), rows)


def prune(json_output: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Remove layers and blobs no image uses, and abandoned partial downloads."""
    with _context() as ctx:
        result = service.prune(ctx)
    if json_output:
        output.print_json(result)
    else:
        output.out.print(f"removed {result.layers_removed} layers, {result.blobs_removed} blobs, "
                         f"{result.partials_removed} unfinished downloads and writes")


def save(
    names: list[str] = typer.Argument(..., help="Images to save."),
    output_file: Path = typer.Option(..., "--output", "-o", help="The tar file to write."),
    fmt: str = typer.Option("docker", "--format", help="docker (docker load) or oci (OCI image layout)."),
) -> None:
    """Write images to a tar archive."""
    with _context() as ctx:
        service.save(ctx, names, output_file, fmt=fmt)


def load(
    input_file: Path = typer.Option(..., "--input", "-i", help="A docker-archive or OCI-layout tar."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only image ids."),
) -> None:
    """Load images from a tar archive."""
    with _context() as ctx:
        records = service.load(ctx, input_file)
        for record in records:
            names = ctx.images.names(record.id)
            output.out.print(record.id if quiet else f"Loaded image: {', '.join(names) or record.id}")


def _split_name(name: str) -> tuple[str, str]:
    """'docker.io/library/busybox:latest' → ('busybox', 'latest'); digests show as the tag column."""
    ref = parse_reference(name)
    repository = ref.familiar().split("@", 1)[0]
    if ref.tag and repository.endswith(f":{ref.tag}"):
        repository = repository[: -len(ref.tag) - 1]
    return repository, ref.tag or (ref.digest or "<none>")[:19]
