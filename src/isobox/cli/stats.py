"""`isobox stats`: a live table of what workloads use, refreshed every second until ^C, or one table with
--no-stream. CPU % needs two samples, so even --no-stream takes a second."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import typer

from isobox.cli import output

if TYPE_CHECKING:
    from isobox.cli.rows import StatsRow
    from isobox.service.context import Context
    from isobox.service.stats import Sample

INTERVAL_S = 1.0
FORMAT_HELP = ("Go template, 'table TEMPLATE', 'table' or 'json'. Fields: Container, ID, Name, Kind, CPUPerc, "
               "MemUsage, MemPerc, NetIO, BlockIO, PIDs.")
EXAMPLES = """

Examples:

  isobox stats

  isobox stats --no-stream web db

  isobox stats --no-stream --format '{{.Name}} {{.CPUPerc}} {{.MemUsage}}'"""
_CLEAR = "\x1b[2J\x1b[H"  # erase the screen, cursor home: what docker stats does between refreshes


def register(app: typer.Typer) -> None:
    register_container(app)


def register_container(app: typer.Typer) -> None:
    app.command("stats", help="What workloads use, live.\n\nCPU %, memory and its limit, network and block "
                              "I/O, processes, of running workloads or those named." + EXAMPLES)(stats)


def stats(
    names: list[str] = typer.Argument(None, help="Workloads (default: every running one).", metavar="WORKLOAD"),
    all_: bool = typer.Option(False, "-a", "--all", help="Stopped workloads too (with zeros)."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print one table and exit."),
    format_text: str = typer.Option("", "--format", help=FORMAT_HELP, metavar="TEMPLATE"),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Full ids."),
    json_output: bool = typer.Option(False, "--json", help="One sample of each as isobox's own JSON."),
) -> None:
    from isobox.service.context import open_context

    ctx = open_context()
    before = _samples(ctx, names, all_)
    if json_output:
        time.sleep(INTERVAL_S)
        output.print_json([_document(b, a) for b, a in _pairs(before, _samples(ctx, names, all_))])
        return
    clear = not no_stream and sys.stdout.isatty()
    try:
        while True:
            time.sleep(INTERVAL_S)
            after = _samples(ctx, names, all_)
            rows = [_row(b, a, given, no_trunc) for (b, a), given in zip(_pairs(before, after), _given(names, after),
                                                                          strict=True)]
            from isobox.cli.rows import STATS_DEFAULT, STATS_HEADERS
            from isobox.cli.tables import render_listing

            text = render_listing(format_text, rows, default_table=STATS_DEFAULT, headers=STATS_HEADERS)
            output.write((_CLEAR if clear else "") + text)
            if no_stream:
                return
            before = after
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _samples(ctx: Context, names: list[str] | None, all_: bool) -> list[Sample]:
    from isobox.service import stats as service
    from isobox.service import workloads

    if names:
        return [service.sample(ctx, name) for name in names]
    return [service.sample(ctx, r.id) for r in reversed(workloads.list_workloads(ctx, all=all_))]


def _pairs(before: list[Sample], after: list[Sample]) -> list[tuple[Sample | None, Sample]]:
    """Each new sample with the previous one of the same workload (none for a workload that just started)."""
    previous = {s.id: s for s in before}
    return [(previous.get(s.id), s) for s in after]


def _given(names: list[str] | None, after: list[Sample]) -> list[str]:
    """The CONTAINER column: what the user typed, or the short id, as Docker's."""
    return list(names) if names else [s.id[:12] for s in after]


def _row(before: Sample | None, after: Sample, given: str, no_trunc: bool) -> StatsRow:
    from isobox.cli.rows import StatsRow, io_pair, memory_cell, percent
    from isobox.service.stats import cpu_percent

    return StatsRow(
        Container=given, ID=after.id if no_trunc else after.id[:12], Name=after.name, Kind=after.kind.value,
        CPUPerc=percent(cpu_percent(before, after)),
        MemUsage=memory_cell(after.memory_bytes, after.memory_limit_bytes),
        MemPerc=percent(after.memory_percent),
        NetIO=io_pair(after.net_rx_bytes, after.net_tx_bytes),
        BlockIO=io_pair(after.block_read_bytes, after.block_write_bytes),
        PIDs=str(after.pids),
    )


def _document(before: Sample | None, after: Sample) -> dict[str, object]:
    from isobox.service.stats import cpu_percent

    return {
        "id": after.id[:12], "name": after.name, "kind": after.kind.value, "cpu_ns": after.cpu_ns,
        "cpu_percent": round(cpu_percent(before, after), 2), "memory_bytes": after.memory_bytes,
        "memory_limit_bytes": after.memory_limit_bytes, "pids": after.pids, "net_rx_bytes": after.net_rx_bytes,
        "net_tx_bytes": after.net_tx_bytes, "block_read_bytes": after.block_read_bytes,
        "block_write_bytes": after.block_write_bytes,
    }
