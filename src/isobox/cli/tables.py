"""Docker's listings for isobox's CLI: the --format keywords, and the table writer.

A listing command (ps, images, network ls, volume ls, stats …) calls ``render_listing`` with the user's
--format, its rows, its default table format and the title of each field, and prints what comes back:

    ''  or 'table'        the command's default table
    'table TEMPLATE'      a header row, then one row per item, in aligned columns
    'json'                one JSON object per line ({{json .}} of each row)
    any other template    one rendered line per item, no header

as docker/cli's formatter.Context.Write does. The header row is the same template rendered over the field
titles, so ``table {{.ID}}\\t{{.Names}}`` gets ``CONTAINER ID   NAMES`` from {"ID": "CONTAINER ID", "Names":
"NAMES"}. Columns are aligned as Docker's tabwriter aligns them (a column is as wide as its widest cell plus 3
spaces, at least 10): cells are never cut, and a line wider than the terminal wraps there, as Docker's do.

Rows are what templates see: best a frozen dataclass whose fields carry Docker's names (ID, Names, Status …)
and whose methods take arguments ({{.Label "key"}}), as Docker's row contexts do; ``json`` writes its fields
with sorted keys, as Docker's MarshalJSON does. ``inspect -f`` needs no listing: ``parse(f).render(document)``
for each document, each followed by a newline.

The rest of the module writes the words inside the cells as Docker does: sizes and durations as docker/go-units
(HumanSize, BytesSize, HumanDuration), statuses as the Docker daemon, ports, ids and commands as docker/cli.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from isobox.cli.goprint import quote
from isobox.cli.gotemplate import parse
from isobox.cli.gotemplate_funcs import HEADER_FUNCTIONS
from isobox.model.humanize import human_duration as human_duration  # the one implementation
from isobox.model.status import Status

TABLE_KEY = "table"
JSON_KEY = "json"
MIN_WIDTH = 10  # docker/cli: tabwriter.NewWriter(output, 10, 1, 3, ' ', 0)
PADDING = 3


class HeaderRow(dict[str, str]):
    """The titles of a listing's fields, which a table's header row is rendered from (Docker's
    SubHeaderContext). A field without a title renders as <no value>, as in Docker."""

    def Label(self, name: str) -> str:  # the name templates call: {{.Label "com.example.key"}}
        """The title of a label's column: its last dot-separated part, dashes and underscores as spaces."""
        return name.split(".")[-1].replace("-", " ").replace("_", " ")


def render_listing(format_text: str, rows: Iterable[object], *, default_table: str, headers: Mapping[str, str]) -> str:
    """What a listing prints for ``--format format_text`` (see the module's docstring). Rows are rendered before
    anything is returned, so a template error (InvalidArgumentError) leaves no partial output."""
    if format_text in ("", TABLE_KEY):
        format_text = default_table
    is_table = format_text.startswith(TABLE_KEY)
    body = "{{json .}}" if format_text == JSON_KEY else format_text[len(TABLE_KEY) :] if is_table else format_text
    # Shells pass \t and \n literally: Docker reads them as a tab and a newline.
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    template = parse(body)
    lines = "".join(template.render(row) + "\n" for row in rows)
    if not is_table:
        return lines
    header = template.render(HeaderRow(headers), functions=HEADER_FUNCTIONS, keep_partial=True)
    return tabwrite(header + "\n" + lines)


# -- the column writer -----------------------------------------------------------------------------------------


def display_width(text: str) -> int:
    """Terminal columns a text takes (go-runewidth, as Docker's tabwriter counts): East Asian wide and
    full-width characters 2, combining marks, format and control characters 0, others 1."""
    if text.isascii():
        return sum(1 for ch in text if " " <= ch < "\x7f")
    width = 0
    for ch in text:
        if unicodedata.category(ch) in ("Mn", "Me", "Cf", "Cc"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def tabwrite(text: str, *, min_width: int = MIN_WIDTH, padding: int = PADDING) -> str:
    """Align tab-terminated cells into columns, as Go's text/tabwriter (Docker's copy, left-aligned, padded
    with spaces). As there, a cell belongs to a column only if a tab ends it, the text after a line's last
    tab is written as it is, and a column's width is set by the run of consecutive lines that have it."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format(lines, [], 0, len(lines), out, min_width, padding)
    return "".join(out)


def _format(
    lines: list[list[str]], widths: list[int], line0: int, line1: int, out: list[str], min_width: int, padding: int
) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:  # no tab-terminated cell in this column on this line
            this += 1
            continue
        _write_lines(lines, widths, line0, this, out)
        line0 = this
        width = min_width
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, display_width(lines[this][column]) + padding)
            this += 1
        widths.append(width)
        _format(lines, widths, line0, this, out, min_width, padding)
        widths.pop()
        line0 = this
    _write_lines(lines, widths, line0, line1, out)


def _write_lines(lines: list[list[str]], widths: list[int], line0: int, line1: int, out: list[str]) -> None:
    for i in range(line0, line1):
        for j, cell in enumerate(lines[i]):
            out.append(cell)
            if j < len(widths):
                out.append(" " * (widths[j] - display_width(cell)))
        if i + 1 < len(lines):  # the text after the last newline ends the output without one
            out.append("\n")


# -- sizes -----------------------------------------------------------------------------------------------------

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _scaled(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def human_size(size_bytes: float, precision: int = 3) -> str:
    """A size in decimal units with ``precision`` significant digits, as go-units' HumanSizeWithPrecision
    (precision 3: docker images' SIZE, ps --size, stats' NET I/O and BLOCK I/O; 4 is HumanSize): 45B, 12.3kB,
    1.2MB, 1e+03kB for 999.9 kB (Go's %g, which Python's matches)."""
    size, unit = _scaled(float(size_bytes), 1000.0, _DECIMAL_UNITS)
    return f"{size:.{precision}g}{unit}"


def binary_size(size_bytes: float) -> str:
    """A size in binary units with 4 significant digits, as go-units' BytesSize (docker stats' MEM USAGE):
    512B, 1.5MiB, 7.773GiB."""
    size, unit = _scaled(float(size_bytes), 1024.0, _BINARY_UNITS)
    return f"{size:.4g}{unit}"


# -- durations and statuses ------------------------------------------------------------------------------------


def time_ago(then_s: float, now_s: float) -> str:
    """Docker's CREATED column: "About a minute ago", "2 days ago"."""
    return human_duration(now_s - then_s) + " ago"


def status_text(
    status: Status,
    *,
    started_at_s: float | None,
    finished_at_s: float | None,
    exit_code: int | None,
    now_s: float,
    health: str = "",
) -> str:
    """Docker's STATUS column (the daemon's State.String): "Up 5 minutes", "Up 2 hours (Paused)",
    "Up 3 days (healthy)", "Exited (0) 2 hours ago", "Created", "Removal In Progress"."""
    if status in (Status.RUNNING, Status.PAUSED):
        up = human_duration(now_s - (started_at_s if started_at_s is not None else now_s))
        if status is Status.PAUSED:
            return f"Up {up} (Paused)"
        if health:
            return f"Up {up} ({'health: starting' if health == 'starting' else health})"
        return f"Up {up}"
    if status is Status.REMOVING:
        return "Removal In Progress"
    if status is Status.CREATED or started_at_s is None:
        return "Created"
    code = exit_code if exit_code is not None else 0
    if finished_at_s is None:
        return f"Exited ({code})"
    return f"Exited ({code}) {human_duration(now_s - finished_at_s)} ago"


# -- ports, ids, commands --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortSummary:
    """A port as Docker's API lists it for ps: the workload's port and protocol and, when published, the host
    address and port. A port published on every address is two entries, 0.0.0.0 and ::, as Docker's are."""

    private_port: int
    protocol: str = "tcp"
    host_ip: str = ""  # "" when the port is only exposed
    public_port: int = 0


def _join_host_port(host: str, port: str | int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _address_order(host_ip: str) -> tuple[int, bytes]:
    """Go's netip.Addr order: no address, then IPv4, then IPv6, each by their bytes."""
    import ipaddress

    if not host_ip:
        return (0, b"")
    address = ipaddress.ip_address(host_ip)
    return (address.max_prefixlen, address.packed)


def ports_column(ports: Iterable[PortSummary]) -> str:
    """Docker's PORTS column (docker/cli DisplayablePorts): exposed ports and ports published on the same
    number grouped into ranges, then the other published ports: "80/tcp, 0.0.0.0:8080->80/tcp,
    [::]:8080->80/tcp". IPv6 addresses are bracketed, as docker/cli does since 28.0 (docker/cli#5363;
    earlier releases printed :::8080)."""
    ordered = sorted(ports, key=lambda p: (p.private_port, _address_order(p.host_ip), p.public_port, p.protocol))
    groups: dict[str, list[int]] = {}  # "tcp" or "0.0.0.0/tcp" -> [first, last] of a run of consecutive ports
    results: list[str] = []
    mappings: list[str] = []
    for port in ordered:
        current, key = port.private_port, port.protocol
        if port.host_ip:
            if port.public_port != current:
                address = _join_host_port(port.host_ip, port.public_port)
                mappings.append(f"{address}->{current}/{port.protocol}")
                continue
            key = f"{port.host_ip}/{port.protocol}"
        group = groups.get(key)
        if group is not None and current == group[1] + 1:
            group[1] = current
            continue
        if group is not None:
            results.append(_port_group(key, *group))
        groups[key] = [current, current]
    # Runs still open are written in the order their keys first appeared (dicts keep insertion order).
    results.extend(_port_group(key, first, last) for key, (first, last) in groups.items())
    return ", ".join(results + mappings)


def _port_group(key: str, first: int, last: int) -> str:
    host, _, protocol = key.rpartition("/")
    numbers = str(first) if first == last else f"{first}-{last}"
    return (f"{_join_host_port(host, numbers)}->{numbers}" if host else numbers) + "/" + protocol


def short_id(identifier: str, *, no_trunc: bool = False) -> str:
    """An id as Docker's tables show it: without its "sha256:" prefix, 12 characters unless --no-trunc."""
    if no_trunc:
        return identifier
    return identifier.partition(":")[2][:12] if ":" in identifier else identifier[:12]


def ellipsis(text: str, max_width: int) -> str:
    """Docker's Ellipsis: the text cut to ``max_width`` terminal columns, its last one an ellipsis (…)."""
    if max_width <= 0:
        return ""
    if max_width == 1:
        return text[:1]
    if display_width(text) <= max_width:
        return text
    width = 0
    for i, ch in enumerate(text):
        width += display_width(ch)
        if width > max_width - 1:
            return text[:i] + "…"
    return text


def quoted_command(command: str, *, no_trunc: bool = False) -> str:
    """Docker's COMMAND column: the command line quoted as a Go string, cut to 20 columns unless --no-trunc:
    "nginx -g 'daemon of…"."""
    return quote(command if no_trunc else ellipsis(command, 20))
