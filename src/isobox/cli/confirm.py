"""Asking before removing things, as Docker's prune commands do: "Are you sure you want to continue? [y/N]"."""

from __future__ import annotations

import sys

import typer


def confirm(what: str) -> None:
    """Print ``what`` will be removed and ask; anything but y or yes (or no terminal to ask on and no answer
    on stdin) ends the command with nothing done and exit code 0, as `docker system prune` without -f."""
    sys.stderr.write(f"WARNING! {what}\nAre you sure you want to continue? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline() if not sys.stdin.closed else ""
    if answer.strip().lower() not in ("y", "yes"):
        if not answer.endswith("\n"):
            sys.stderr.write("\n")
        sys.stderr.write("Nothing removed.\n")
        raise typer.Exit(0)  # Docker's prune commands end successfully when told no
