"""Image operations for the CLI, the REST API and the Python API."""

from __future__ import annotations

from isobox.images import builtin
from isobox.images.store import ImageRecord
from isobox.service.context import Context, open_context


def install_builtin(ctx: Context | None = None) -> ImageRecord:
    context = ctx or open_context()
    return builtin.install(context.images)


def ensure(ctx: Context, text: str) -> ImageRecord:
    """The image named ``text``, from the store; the built-in busybox is (re)built when missing."""
    from isobox.errors import NotFoundError

    try:
        return ctx.images.resolve(text)
    except NotFoundError:
        if text in ("busybox", "busybox:latest", builtin.BUILTIN_NAME):
            return builtin.install(ctx.images)
        raise
