"""`isobox ps`, `top` and `port`: what runs, what runs inside, and where its ports are published."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from isobox.cli import output

if TYPE_CHECKING:
    from isobox.model.record import WorkloadRecord
    from isobox.service.context import Context

FILTER_HELP = ("Filter: label=KEY[=VALUE], name=REGEX, id=PREFIX, status=running|exited|…, ancestor=IMAGE, "
               "network=NAME, volume=NAME, exited=CODE, before=NAME, since=NAME. Repeatable.")
FORMAT_HELP = ("Go template ('{{.Names}}\\t{{.Status}}'), 'table TEMPLATE', 'table' or 'json'. Fields: ID, Kind, "
               "Image, Command, CreatedAt, RunningFor, Ports, State, Status, Size, Names, Labels, Label \"KEY\", "
               "Mounts, Networks, LocalVolumes.")
PS_EXAMPLES = """

Examples:

  isobox ps -a

  isobox ps --filter status=exited -q

  isobox ps --format '{{.Names}}\\t{{.Status}}'"""


def _ctx() -> Context:
    from isobox.service.context import open_context

    return open_context()


def register(app: typer.Typer) -> None:
    app.command("ps", help="List workloads (running ones; all with -a)." + PS_EXAMPLES)(ps)
    app.command("top")(top)
    app.command("port")(port)


def register_container(group: typer.Typer) -> None:
    for name in ("ls", "ps", "list"):
        group.command(name, help="List workloads (running ones; all with -a)." + PS_EXAMPLES,
                      hidden=name != "ls")(ps)
    group.command("top")(top)
    group.command("port")(port)


def ps(
    all_: bool = typer.Option(False, "-a", "--all", help="Show all workloads (only running ones by default)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only the ids."),
    filters: list[str] = typer.Option([], "-f", "--filter", help=FILTER_HELP, metavar="NAME=VALUE"),
    format_text: str = typer.Option("", "--format", help=FORMAT_HELP, metavar="TEMPLATE"),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Full ids and commands."),
    latest: bool = typer.Option(False, "-l", "--latest", help="Only the latest created workload (any state)."),
    last: int = typer.Option(-1, "-n", "--last", help="The N latest created workloads (any state).", metavar="N"),
    size: bool = typer.Option(False, "-s", "--size", help="Add the size of each workload's own files."),
    json_output: bool = typer.Option(False, "--json", help="isobox's own JSON summary (see also --format json)."),
) -> None:
    from isobox.service import filters as matching

    ctx = _ctx()
    limit = 1 if latest else (last if last > 0 else None)
    chosen = matching.from_args(filters, matching.WORKLOAD_FILTERS, op="ps")
    found = matching.workloads(ctx, chosen, all_=all_, limit=limit)
    if quiet:
        output.write("".join(f"{r.id if no_trunc else r.short_id}\n" for r in found))
        return
    if json_output:
        output.print_json([_summary(r) for r in found])
        return
    output.print_formatted(
        _rows(ctx, found, no_trunc=no_trunc, size=size or "{{.Size}}" in format_text),
        format_text=format_text,
        default_table=_default_table(size),
        headers=_headers(),
    )


def _default_table(size: bool) -> str:
    from isobox.cli.rows import PS_DEFAULT, PS_DEFAULT_SIZE

    return PS_DEFAULT_SIZE if size else PS_DEFAULT


def _headers() -> dict[str, str]:
    from isobox.cli.rows import PS_HEADERS

    return PS_HEADERS


def _rows(ctx: Context, found: list[WorkloadRecord], *, no_trunc: bool, size: bool) -> list[object]:
    from isobox.cli.rows import container_row
    from isobox.cli.tables import human_size
    from isobox.service import inspect
    from isobox.service.system import workload_size

    now = time.time()
    rows: list[object] = []
    for record in found:
        image = inspect.image_config_of(ctx, record)
        size_text = "0B"
        if size:
            own = workload_size(ctx, record)
            size_text = f"{human_size(own)} (virtual {human_size(own + _image_size(ctx, record))})"
        exposed = record.plan.exposed_ports or (image.exposed_ports if image else ())  # older records: the image's
        rows.append(container_row(record, now_s=now, exposed=exposed,
                                  no_trunc=no_trunc, size_text=size_text))
    return rows


def _image_size(ctx: Context, record: WorkloadRecord) -> int:
    from isobox.errors import IsoboxError

    try:
        return int(ctx.images.get(record.plan.image_id).size)
    except IsoboxError:
        return 0


def _summary(record: WorkloadRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "name": record.name,
        "kind": record.kind.value,
        "image": record.plan.image,
        "command": list(record.plan.process.argv),
        "status": record.status.value,
        "exit_code": record.exit_code,
        "created_at": record.created_at,
    }


def top(
    name: str = typer.Argument(..., help="A running workload."),
) -> None:
    """The processes of a running workload.

    A container's as the host sees them (ps -ef columns), a VM's from inside its guest (through the agent)."""
    from isobox.service import control

    table = control.top(_ctx(), name)
    # docker top: a tabwriter with columns at least 20 wide; every cell whole.
    output.print_table(list(table.titles), [list(row) for row in table.rows], min_width=20)


def port(
    name: str = typer.Argument(..., help="A workload."),
    private: str | None = typer.Argument(None, help="Only this port of the workload: PORT[/tcp|udp].",
                                         metavar="PORT[/PROTO]"),
) -> None:
    """The workload's published ports.

    "80/tcp -> 0.0.0.0:8080" lines, or with PORT the host addresses it is published on. A port that is not
    published is an error, as with Docker.

    Example: isobox port web 80"""
    from isobox.errors import NotFoundError
    from isobox.service import ports

    mappings = ports.published(_ctx(), name)
    if private is None:
        output.write("".join(f"{m.container_port}/{m.protocol} -> {m.host_address}\n" for m in mappings))
        return
    number, _, protocol = private.partition("/")
    chosen = [m for m in mappings if str(m.container_port) == number and m.protocol == (protocol or "tcp")]
    if not chosen:
        raise NotFoundError(f"no public port '{number}/{protocol or 'tcp'}' published for {name}", op="port", id=name)
    output.write("".join(f"{m.host_address}\n" for m in chosen))
