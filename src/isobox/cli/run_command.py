"""What `isobox run` and `isobox create` do once their flags are parsed (by typer or by the fast path)."""

from __future__ import annotations

from isobox.cli import output
from isobox.cli.spec_flags import RunFlags, build_spec


def run_workload(image: str, command: list[str], detach: bool, flags: RunFlags) -> int:
    """Returns the exit code for the isobox process: the workload's own in the foreground."""
    from isobox.cli.terminal import raw_terminal, signal_forwarding
    from isobox.model.streams import Attach
    from isobox.service import workloads
    from isobox.service.context import open_context

    spec = build_spec(image, command, flags)
    assert spec.name is not None  # build_spec names every workload: signals are passed on by that name
    ctx = open_context()
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

    record = workloads.create(open_context(), build_spec(image, command, flags))
    output.print_line(record.id)
    return 0
