"""Image commands: pull, push, images, rmi, tag, inspect, history, save, load, login."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
