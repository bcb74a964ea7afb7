"""`isobox inspect` (and `image|network|volume inspect`): Docker's documents, the ones `isobox serve` answers
with (service/inspect.py), isobox's own facts under the key "Isobox"; with -f a Go template over each.

As docker inspect: the documents found are printed (a JSON array, or one rendered line each), then each name
that matched nothing is reported ("No such object: NAME") and the exit code is 1.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from isobox.cli import output

if TYPE_CHECKING:
    from isobox.service.context import Context

FORMAT_HELP = "Go template over each document, e.g. '{{.State.Status}}', '{{json .Config}}'."
EXAMPLES = """

Examples:

  isobox inspect web

  isobox inspect -f '{{.State.Status}} {{.NetworkSettings.IPAddress}}' web

  isobox inspect -f '{{json .Config.Env}}' web

  isobox inspect --type image busybox"""


class ObjectType(enum.StrEnum):
    CONTAINER = "container"
    IMAGE = "image"
    NETWORK = "network"
    VOLUME = "volume"


Fetch = Callable[["Context", str], dict[str, Any]]


def _fetchers() -> dict[ObjectType, Fetch]:
    from isobox.service import inspect as documents

    return {ObjectType.CONTAINER: documents.container, ObjectType.IMAGE: documents.image,
            ObjectType.NETWORK: documents.network, ObjectType.VOLUME: documents.volume}


def register(app: typer.Typer) -> None:
    app.command("inspect", help="Details of workloads, images, networks or volumes.\n\nAs Docker's JSON documents, "
                                "isobox's own facts under \"Isobox\"." + EXAMPLES)(inspect)


def register_container(group: typer.Typer) -> None:
    group.command("inspect")(inspect_container)


def inspect_container(
    names: list[str] = typer.Argument(..., help="Workload names or ids.", metavar="WORKLOAD"),
    format_text: str = typer.Option("", "-f", "--format", help=FORMAT_HELP, metavar="TEMPLATE"),
) -> None:
    """Details of workloads as Docker's JSON documents."""
    print_documents(names, [ObjectType.CONTAINER], format_text)


def inspect(
    names: list[str] = typer.Argument(..., help="Names or ids.", metavar="NAME"),
    format_text: str = typer.Option("", "-f", "--format", help=FORMAT_HELP, metavar="TEMPLATE"),
    object_type: ObjectType | None = typer.Option(None, "--type", help="Only this kind of object.",
                                                  case_sensitive=False),
) -> None:
    kinds = [object_type] if object_type is not None else list(ObjectType)
    print_documents(names, kinds, format_text)


def print_documents(names: Sequence[str], kinds: Sequence[ObjectType], format_text: str) -> None:
    """Find each name among ``kinds`` (in that order, as Docker looks), print the documents, report the rest."""
    from isobox.errors import InvalidArgumentError, NotFoundError
    from isobox.service.context import open_context

    ctx = open_context()
    fetchers = _fetchers()
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    for name in names:
        for kind in kinds:
            try:
                found.append(fetchers[kind](ctx, name))
                break
            except (NotFoundError, InvalidArgumentError):  # a name that is no valid reference: not an image
                continue
        else:
            missing.append(name)
    if format_text:
        from isobox.cli.gotemplate import parse

        template = parse(format_text.replace("\\t", "\t").replace("\\n", "\n"))
        output.write("".join(template.render(document) + "\n" for document in found))
    else:
        output.write(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    if missing:
        what = "object" if len(kinds) > 1 else kinds[0].value
        for name in missing:
            sys.stderr.write(f"Error: No such {what}: {name}\n")
        raise typer.Exit(1)
