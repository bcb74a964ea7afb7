"""Image operations for the CLI, the REST API and the Python API."""

from __future__ import annotations

from isobox.images import builtin
from isobox.images.store import ImageRecord
from isobox.service.context import Context, open_context


def install_builtin(ctx: Context | None = None) -> ImageRecord:
    context = ctx or open_context()
    return builtin.install(context.images)
