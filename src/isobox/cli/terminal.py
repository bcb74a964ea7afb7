"""The local terminal during an attached run: raw mode for -it, and signals passed to the workload."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from isobox.service.context import Context


@contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    fd = sys.stdin.fileno()
    if not enabled or not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    # TCSANOW, not setraw's default TCSAFLUSH: a flush would discard what the user typed ahead, before the
    # workload started (termios(3): TCSAFLUSH "discards all input received but not read").
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextmanager
def signal_forwarding(ctx: Context, name: str, *, enabled: bool = True) -> Iterator[None]:
    """Like Docker's --sig-proxy: SIGINT/SIGTERM/SIGHUP to isobox go to the workload ``name`` instead
    (not enabled when a terminal in raw mode passes ^C on itself)."""
    if not enabled:
        yield
        return

    def forward(signum: int, frame: FrameType | None) -> None:
        from isobox.errors import IsoboxError
        from isobox.service import control

        try:
            control.kill(ctx, name, signum)
        except IsoboxError:
            pass

    wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, forward) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
