"""What `isobox run` and `isobox create` do once their flags are parsed (by typer or by the fast path)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from isobox.cli import output
from isobox.cli.spec_flags import RunFlags, build_spec

if TYPE_CHECKING:
    from isobox.service.context import Context


def _say_when_pulling(ctx: Context, image: str, flags: RunFlags) -> None:
    """Docker's line before it pulls an image the store lacks (on stderr: stdout is the workload's)."""
    from isobox.service import pulling

    if not pulling.is_local(ctx, image):
        import sys

        sys.stderr.write(f"Unable to find image '{pulling.familiar(image)}' locally\n")
        sys.stderr.flush()


def run_workload(image: str, command: list[str], detach: bool, flags: RunFlags) -> int:
    """Returns the exit code for the isobox process: the workload's own in the foreground."""
    from isobox.cli.terminal import raw_terminal, signal_forwarding
    from isobox.model.streams import Attach
    from isobox.service import workloads
    from isobox.service.context import open_context

    spec = build_spec(image, command, flags)
    assert spec.name is not None  # build_spec names every workload: signals are passed on by that name
    ctx = open_context()
    _say_when_pulling(ctx, image, flags)
    if detach:
        result = workloads.run(ctx, spec, detach=True)
        output.print_line(result.record.id)
        return 0
    attach = Attach(stdin=0 if spec.interactive else None)
    raw = spec.tty and spec.interactive
    with raw_terminal(raw), signal_forwarding(ctx, spec.name, enabled=not raw):
        result = workloads.run(ctx, spec, attach=attach)
    return result.exit_code if result.exit_code is not None else 0


def create_workload(image: str, command: list[str], flags: RunFlags) -> int:
    from isobox.service import workloads
    from isobox.service.context import open_context

    spec = build_spec(image, command, flags)
    ctx = open_context()
    _say_when_pulling(ctx, image, flags)
    record = workloads.create(ctx, spec)
    output.print_line(record.id)
    return 0
