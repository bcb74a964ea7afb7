"""Printing for the CLI (the only layer that prints): tables, JSON, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from isobox.state.codec import to_jsonable

# Piped output is for scripts: never squeeze or cut tables to a guessed terminal width.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 4096)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# Exit codes, as Docker's CLI uses them: 125 for errors of isobox itself.
EXIT_ISOBOX_ERROR = 125


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, sort_keys=True) + "\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    out.print(table)


def fail(message: str, code: int = EXIT_ISOBOX_ERROR) -> None:
    err.print(f"[red]isobox:[/red] {message}", markup=True, highlight=False)
    raise SystemExit(code)
