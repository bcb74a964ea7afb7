"""Printing for the CLI (the only layer that prints): tables, JSON, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from isobox.state.codec import to_jsonable

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")


class _LazyConsole:
    """A rich Console made on first use: `isobox run` prints nothing of its own, so it never pays rich's import."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def get(self) -> Console:
        """The real Console (for rich APIs that need one, e.g. progress bars)."""
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            # Piped output is for scripts: never squeeze or cut tables to a guessed terminal width.
            width = None if stream.isatty() else 4096
            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True, width=width)
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        self.get().print(*objects, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


out = _LazyConsole(stderr=False)
err = _LazyConsole(stderr=True)

# Exit codes, as Docker's CLI uses them: 125 for errors of isobox itself.
EXIT_ISOBOX_ERROR = 125


def print_line(text: str) -> None:
    """One plain line on stdout (an id from `run -d` or `create`): no markup, and no import of rich (~15 ms)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, sort_keys=True) + "\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    out.print(table)


def print_listing(
    records: Sequence[T],
    *,
    json_output: bool,
    quiet: bool,
    name: Callable[[T], str],
    headers: Sequence[str],
    rows: Callable[[Sequence[T]], Sequence[Sequence[Any]]],
    as_json: Callable[[Sequence[T]], Any] | None = None,
) -> None:
    """What every `ls` prints: one name per line with -q (which wins, as in Docker), the records as
    JSON with --json, else a table of ``rows(records)``."""
    if quiet:
        for record in records:
            out.print(name(record))
    elif json_output:
        print_json(as_json(records) if as_json is not None else records)
    else:
        print_table(headers, rows(records))


def warn(message: str) -> None:
    from rich.text import Text

    err.print(Text.assemble(("isobox: warning:", "yellow"), " ", message), highlight=False)


def fail(message: str, code: int = EXIT_ISOBOX_ERROR) -> None:
    from rich.text import Text

    # The message is data (it may quote user input with brackets): never read it as markup.
    err.print(Text.assemble(("isobox:", "red"), " ", message), highlight=False)
    raise SystemExit(code)
