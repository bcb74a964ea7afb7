"""The store's image commands: images (image ls), rmi (image rm), tag, image inspect, history, prune, save and
load; each registered at the top level and in the `image` group, as Docker's are."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from isobox.cli import output
from isobox.service.context import Context, open_context

FILTER_HELP = ("Filter: dangling=true|false, label=KEY[=VALUE], reference=GLOB (busybox, 'reg/*:1.*'), "
               "before=IMAGE, since=IMAGE. Repeatable.")
FORMAT_HELP = ("Go template, 'table TEMPLATE', 'table' or 'json'. Fields: Repository, Tag, Digest, ID, CreatedSince, "
               "CreatedAt, Size, Platform, Label \"KEY\".")
IMAGES_HELP = """List the images in the store.

Examples:

  isobox images

  isobox images --filter dangling=true -q

  isobox images --format '{{.Repository}}:{{.Tag}} {{.Size}}'"""
JSON_HELP = "Print isobox's own JSON."


@contextmanager
def _context() -> Iterator[Context]:
    ctx = open_context()
    try:
        yield ctx
    finally:
        ctx.close()


def register(app: typer.Typer, image: typer.Typer) -> None:
    app.command("images", help=IMAGES_HELP)(images)
    image.command("ls", help=IMAGES_HELP)(images)
    image.command("list", help=IMAGES_HELP, hidden=True)(images)
    app.command("rmi")(rmi)
    image.command("rm")(rmi)
    for name, function in (("tag", tag), ("save", save), ("load", load)):
        app.command(name)(function)
        image.command(name)(function)
    image.command("inspect")(inspect)
    image.command("history")(history)
    image.command("prune")(prune)


def images(
    repository: str | None = typer.Argument(None, help="Only this repository (and tag), e.g. busybox or busybox:1.",
                                            metavar="REPOSITORY[:TAG]"),
    all_: bool = typer.Option(False, "-a", "--all", help="Accepted for Docker's sake: isobox keeps no intermediate "
                                                         "images, so every image is listed anyway."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only image ids."),
    digests: bool = typer.Option(False, "--digests", help="Show the digests images were pulled or pushed by."),
    filters: list[str] = typer.Option([], "-f", "--filter", help=FILTER_HELP, metavar="NAME=VALUE"),
    format_text: str = typer.Option("", "--format", help=FORMAT_HELP, metavar="TEMPLATE"),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Full image ids."),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    from isobox.cli.rows import IMAGE_HEADERS, IMAGES_DEFAULT, IMAGES_DEFAULT_DIGESTS, image_rows
    from isobox.service import filters as matching
    from isobox.service import inspect as documents

    chosen = matching.from_args(filters, matching.IMAGE_FILTERS, op="images")
    if repository:
        chosen.setdefault("reference", []).append(repository)
    with _context() as ctx:
        found = matching.images(ctx, chosen)
        repo_digests = ctx.images.records.all_repo_digests()
    if quiet:
        ids = dict.fromkeys(m.record.id if no_trunc else m.record.short_id for m in found)
        output.write("".join(f"{i}\n" for i in ids))
        return
    if json_output:
        output.print_json([{"id": m.record.id, "names": list(m.names), "size": m.record.size,
                            "created": m.record.created, "platform": m.record.platform,
                            "repo_digests": [str(d) for d in repo_digests.get(m.record.id, [])]} for m in found])
        return
    now = time.time()
    rows = [row for m in found for row in image_rows(
        m.record.id, m.names, [str(d) for d in repo_digests.get(m.record.id, [])], size_bytes=m.record.size,
        created_s=documents.created_unix(m.record.created), platform=m.record.platform, now_s=now, digests=digests,
        no_trunc=no_trunc, labels=m.labels)]
    output.print_formatted(rows, format_text=format_text, default_table=IMAGES_DEFAULT_DIGESTS if digests
                           else IMAGES_DEFAULT, headers=IMAGE_HEADERS)


def rmi(
    names: list[str] = typer.Argument(..., help="Image names or ids.", metavar="IMAGE"),
    force: bool = typer.Option(False, "--force", "-f", help="Remove all names of the image, even if in use."),
) -> None:
    """Remove images.

    A name of an image with several names is only untagged. A name that fails is reported and the others are
    still removed (exit code 1)."""
    from isobox.errors import IsoboxError
    from isobox.service import images as service

    failed = False
    with _context() as ctx:
        for name in names:
            try:
                done = service.remove(ctx, name, force=force)
            except IsoboxError as exc:
                output.error(str(exc))
                failed = True
                continue
            output.write("".join(_removal_line(line) + "\n" for line in done))
    if failed:
        raise typer.Exit(1)


def _removal_line(line: str) -> str:
    """"untagged NAME" / "deleted ID" as Docker words them: "Untagged: busybox:latest", "Deleted: sha256:…"."""
    verb, _, what = line.partition(" ")
    if verb == "untagged":
        from isobox.service.inspect import familiar

        return f"Untagged: {familiar(what)}"
    return f"Deleted: {what}" if verb == "deleted" else line


def tag(
    source: str = typer.Argument(..., help="An image of the store.", metavar="SOURCE_IMAGE[:TAG]"),
    target: str = typer.Argument(..., help="Its new name.", metavar="TARGET_IMAGE[:TAG]"),
) -> None:
    """Give an image another name.

    Example: isobox tag busybox localhost:5000/tools/busybox:1"""
    from isobox.service import images as service

    with _context() as ctx:
        service.tag(ctx, source, target)


def inspect(
    names: list[str] = typer.Argument(..., help="Image names or ids.", metavar="IMAGE"),
    format_text: str = typer.Option("", "-f", "--format", help="Go template over each document.", metavar="TEMPLATE"),
) -> None:
    """Details of images.

    As Docker's JSON documents (RepoTags, RepoDigests, Config, RootFS …).

    Example: isobox image inspect -f '{{.Config.Cmd}}' busybox"""
    from isobox.cli.inspect import ObjectType, print_documents

    print_documents(names, [ObjectType.IMAGE], format_text)


def history(
    name: str = typer.Argument(..., help="An image.", metavar="IMAGE"),
    format_text: str = typer.Option("", "--format", help="Go template, 'table TEMPLATE' or 'json'. Fields: ID, "
                                    "CreatedSince, CreatedAt, CreatedBy, Size, Comment.", metavar="TEMPLATE"),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Whole commands and ids."),
    human: bool = typer.Option(True, "-H", "--human", help="Sizes and dates in human units (default true)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only the image ids."),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show how an image was built, newest step first."""
    from isobox.cli.rows import HISTORY_DEFAULT, HISTORY_HEADERS, history_rows
    from isobox.service import images as service

    with _context() as ctx:
        steps = service.history(ctx, name)
        image_id = ctx.images.resolve(name).id
    if json_output:
        output.print_json(steps)
        return
    rows = history_rows(image_id, steps, now_s=time.time(), no_trunc=no_trunc, human=human)
    if quiet:
        output.write("".join(f"{row.ID}\n" for row in rows))
        return
    output.print_formatted(rows, format_text=format_text, default_table=HISTORY_DEFAULT, headers=HISTORY_HEADERS)


def prune(
    force: bool = typer.Option(False, "-f", "--force", help="Do not ask for confirmation."),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Remove layers and blobs no image uses, and abandoned partial downloads."""
    from isobox.cli.confirm import confirm
    from isobox.service import images as service

    if not force and not json_output:
        confirm("This will remove the layers and blobs no image uses, and abandoned partial downloads.")
    with _context() as ctx:
        result = service.prune(ctx)
    if json_output:
        output.print_json(result)
    else:
        output.write(f"Removed {result.layers_removed} layers, {result.blobs_removed} blobs, "
                     f"{result.partials_removed} partial downloads\n")


def save(
    names: list[str] = typer.Argument(..., help="Images to save.", metavar="IMAGE"),
    output_file: Path | None = typer.Option(None, "--output", "-o", help="The tar file to write (default: stdout).",
                                            metavar="FILE"),
    fmt: str = typer.Option("docker", "--format", help="docker (docker load) or oci (OCI image layout).",
                            metavar="docker|oci"),
) -> None:
    """Write images to a tar archive.

    On stdout unless -o names a file.

    Example: isobox save busybox | gzip > busybox.tar.gz"""
    from isobox.errors import InvalidArgumentError
    from isobox.service import image_streams
    from isobox.service import images as service

    with _context() as ctx:
        if output_file is not None:
            service.save(ctx, names, output_file, fmt=fmt)
            return
        if sys.stdout.isatty():  # as Docker: an archive is no text for a terminal
            raise InvalidArgumentError("cowardly refusing to write the archive to a terminal: use -o FILE or a pipe",
                                       op="save")
        image_streams.save(ctx, names, sys.stdout.buffer, fmt=fmt)


def load(
    input_file: Path | None = typer.Option(None, "--input", "-i", help="A docker-archive or OCI-layout tar (default: "
                                           "stdin), gzip-compressed or not.", metavar="FILE"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only image ids."),
) -> None:
    """Load images from a tar archive.

    Read from stdin unless -i names a file.

    Example: isobox load < busybox.tar"""
    from isobox.errors import InvalidArgumentError
    from isobox.service import image_streams
    from isobox.service import images as service

    with _context() as ctx:
        if input_file is not None:
            records = service.load(ctx, input_file)
        elif sys.stdin.isatty():
            raise InvalidArgumentError("requested load from stdin, but stdin is a terminal: use -i FILE or a pipe",
                                       op="load")
        else:
            records = image_streams.load(ctx, sys.stdin.buffer)
        for record in records:
            names = ctx.images.names(record.id)
            output.print_line(record.id if quiet else f"Loaded image: {', '.join(names) or record.id}")
