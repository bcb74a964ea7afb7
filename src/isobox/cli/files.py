"""`isobox cp`, `diff` and `export`: a workload's files from the host."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from isobox.cli import output

CP_HELP = """Copy files between a workload and the host.

NAME:PATH names a path in a workload; `-` as the source reads a tar from stdin (extracted into a directory of
the workload), as the destination writes a tar to stdout. SRC/. copies a directory's content.

Examples:

  isobox cp ./config.yml web:/etc/app/

  isobox cp web:/var/log/app ./logs

  isobox cp web:/etc - | tar -t"""


def register(app: typer.Typer) -> None:
    register_container(app)


def register_container(group: typer.Typer) -> None:
    group.command("cp", help=CP_HELP)(cp)
    group.command("diff")(diff)
    group.command("export")(export)


def _split(location: str) -> tuple[str | None, str]:
    """NAME:PATH → (NAME, PATH); a host path (no colon before the first slash) → (None, path)."""
    head, sep, rest = location.partition(":")
    if sep and head and "/" not in head and not location.startswith((".", "/")):
        return head, rest or "/"
    return None, location


def cp(
    source: str = typer.Argument(..., help="NAME:PATH, a host path, or - (a tar on stdin).", metavar="SRC"),
    destination: str = typer.Argument(..., help="NAME:PATH, a host path, or - (a tar on stdout).", metavar="DEST"),
    archive: bool = typer.Option(False, "-a", "--archive", help="Keep the owners of what is copied in."),
    follow_link: bool = typer.Option(False, "-L", "--follow-link", help="Follow a symlink that SRC names."),
) -> None:
    from isobox.errors import InvalidArgumentError
    from isobox.service import copying
    from isobox.service.context import open_context

    (src_name, src_path), (dst_name, dst_path) = _split(source), _split(destination)
    if (src_name is None) == (dst_name is None):
        raise InvalidArgumentError("copy between a workload and the host: one of SRC and DEST is NAME:PATH",
                                   op="cp")
    ctx = open_context()
    if src_name is not None:
        if dst_path == "-":
            copying.archive_from(ctx, src_name, src_path, sys.stdout.buffer, follow_link=follow_link)
        else:
            copying.copy_from(ctx, src_name, src_path, Path(dst_path), follow_link=follow_link)
    else:
        assert dst_name is not None
        if src_path == "-":
            copying.archive_to(ctx, dst_name, dst_path, sys.stdin.buffer)
        else:
            copying.copy_to(ctx, dst_name, Path(src_path), dst_path, archive=archive, follow_link=follow_link)


def diff(name: str = typer.Argument(..., help="A workload (a VM once it is stopped).", metavar="WORKLOAD")) -> None:
    """Files a workload added (A), changed (C) or deleted (D) in its image.

    Example: isobox diff web"""
    from isobox.service import changes
    from isobox.service.context import open_context

    output.write("".join(f"{change}\n" for change in changes.diff(open_context(), name)))


def export(
    name: str = typer.Argument(..., help="A workload (a VM once it is stopped).", metavar="WORKLOAD"),
    output_file: Path | None = typer.Option(None, "-o", "--output", help="The tar file to write (default: stdout).",
                                            metavar="FILE"),
) -> None:
    """Write a workload's file system as a tar archive.

    Volumes are left out, as with Docker. Example: isobox export web > web.tar"""
    from isobox.errors import InvalidArgumentError
    from isobox.service import changes
    from isobox.service.context import open_context

    ctx = open_context()
    if output_file is not None:
        partial = output_file.with_name(f".{output_file.name}.partial")
        with open(partial, "wb") as out:
            changes.export(ctx, name, out)
        partial.replace(output_file)
        return
    if sys.stdout.isatty():
        raise InvalidArgumentError("cowardly refusing to write the archive to a terminal: use -o FILE or a pipe",
                                   op="export")
    changes.export(ctx, name, sys.stdout.buffer)
