"""Printing for the CLI (the only layer that prints): tables, listings, JSON, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from isobox.state.codec import to_jsonable

if TYPE_CHECKING:
    from rich.console import Console

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


def write(text: str) -> None:
    """Plain text on stdout as it is (tables, templates' output): never rich markup, never cut to a width."""
    sys.stdout.write(text)
    sys.stdout.flush()


def table_text(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, min_width: int = 10) -> str:
    """A table as Docker's CLI writes one (its tabwriter): whole cells in columns 3 spaces apart, a line wider
    than the terminal left to wrap there. Tabs and newlines inside cells become spaces."""
    from isobox.cli.tables import tabwrite

    def cell(value: Any) -> str:
        return str(value).replace("\t", " ").replace("\n", " ")

    lines = ["\t".join(cell(c) for c in line) for line in [headers, *rows]]
    return tabwrite("\n".join(lines) + "\n", min_width=min_width)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, min_width: int = 10) -> None:
    write(table_text(headers, rows, min_width=min_width))


def print_formatted(rows: Iterable[object], *, format_text: str, default_table: str, headers: Mapping[str, str]
                    ) -> None:
    """A listing for ``--format`` (cli/tables.render_listing): the default table, `table TEMPLATE`, `json`,
    or one line per row of any other template."""
    from isobox.cli.tables import render_listing

    write(render_listing(format_text, rows, default_table=default_table, headers=headers))


def warn(message: str) -> None:
    from rich.text import Text

    err.print(Text.assemble(("isobox: warning:", "yellow"), " ", message), highlight=False)


def error(message: str) -> None:
    """An error about one of several things a command was given (the command goes on with the others)."""
    from rich.text import Text

    err.print(Text.assemble(("isobox:", "red"), " ", message), highlight=False)


def fail(message: str, code: int = EXIT_ISOBOX_ERROR) -> None:
    from rich.text import Text

    # The message is data (it may quote user input with brackets): never read it as markup.
    err.print(Text.assemble(("isobox:", "red"), " ", message), highlight=False)
    raise SystemExit(code)
