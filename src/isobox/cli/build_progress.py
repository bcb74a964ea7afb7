"""How `isobox build` shows its progress on stderr: plain lines (``--progress plain``, or no terminal), or
a live view of the steps on a terminal (``--progress tty``: rich), BuildKit's two modes.

Plain lines carry the step's number, so the lines of stages built side by side stay readable::

    #5 [5/6] RUN make
    #5 building…
    #5 DONE 1.2s
    #4 CACHED
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from isobox.builder.events import BuildEvent, EventKind
from isobox.cli import output

if TYPE_CHECKING:
    from rich.live import Live

OUTPUT_LINES = 6  # lines of a running step's output shown on a terminal


class PlainProgress:
    def __init__(self) -> None:
        self.cached: set[int] = set()

    def _print(self, text: str) -> None:
        from rich.text import Text

        output.err.print(Text(text), highlight=False, soft_wrap=True)

    def __call__(self, event: BuildEvent) -> None:
        tag = f"#{event.number}"
        if event.kind is EventKind.STEP:
            self._print(f"{tag} [{event.number}/{event.total}] {event.text}")
        elif event.kind is EventKind.CACHED:
            self.cached.add(event.number)
            self._print(f"{tag} CACHED")
        elif event.kind is EventKind.RUNNING:
            self._print(f"{tag} running in {event.workload[:12]}")
        elif event.kind is EventKind.OUTPUT:
            self._print(f"{tag} {event.text}")
        elif event.kind is EventKind.DONE and event.number not in self.cached:
            self._print(f"{tag} DONE {event.duration_s:.1f}s")
        elif event.kind is EventKind.WARNING:
            output.warn(event.text)
        elif event.kind is EventKind.IMAGE:
            self._print(f"writing image {event.text} done")
            for tag_name in event.tags:
                self._print(f"naming to {tag_name} done")

    def close(self) -> None:
        return None


@dataclass
class _Step:
    number: int
    text: str
    started: float
    done: float | None = None
    cached: bool = False
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES))


class TerminalProgress:
    """The steps as a list that updates in place: each with its state and time, a running step with the
    last lines it printed (they go once it is done, as BuildKit's view does)."""

    def __init__(self) -> None:
        from rich.live import Live

        self.started = time.monotonic()
        self.steps: dict[int, _Step] = {}
        self.total = 0
        self.notes: list[str] = []
        self.live: Live = Live(self._render(), console=output.err.get(), refresh_per_second=8, transient=False,
                               get_renderable=self._render)
        self.live.start()

    def __call__(self, event: BuildEvent) -> None:
        now = time.monotonic()
        self.total = event.total or self.total
        step = self.steps.get(event.number)
        if event.kind is EventKind.STEP:
            self.steps[event.number] = _Step(event.number, event.text, now)
        elif step is not None and event.kind is EventKind.CACHED:
            step.cached = True
        elif step is not None and event.kind is EventKind.OUTPUT:
            step.lines.append(event.text)
        elif step is not None and event.kind is EventKind.DONE:
            step.done = now
        elif event.kind is EventKind.WARNING:
            self.notes.append(f"warning: {event.text}")
        elif event.kind is EventKind.IMAGE:
            self.notes.append(f"=> writing image {event.text}")
            self.notes += [f"=> naming to {tag}" for tag in event.tags]

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        now = time.monotonic()
        finished = sum(1 for step in self.steps.values() if step.done is not None)
        rows: list[Any] = [Text(f"[+] Building {now - self.started:.1f}s ({finished}/{self.total or '?'})",
                                style="bold")]
        for number in sorted(self.steps):
            step = self.steps[number]
            elapsed = (step.done or now) - step.started
            state = "CACHED" if step.cached else f"{elapsed:.1f}s"
            style = "blue" if step.done is not None else "yellow"
            rows.append(Text.assemble((" => ", style), f"[{number}/{self.total}] {step.text} ", (state, "dim")))
            if step.done is None:
                rows += [Text(f"    {line}", style="dim") for line in step.lines]
        rows += [Text(note) for note in self.notes]
        return Group(*rows)

    def close(self) -> None:
        self.live.stop()


def make(mode: str, quiet: bool) -> PlainProgress | TerminalProgress | None:
    """The display ``--progress`` asks for (auto: live on a terminal, plain lines otherwise)."""
    if quiet:
        return None
    if mode == "tty" or (mode == "auto" and output.err.get().is_terminal):
        return TerminalProgress()
    return PlainProgress()
