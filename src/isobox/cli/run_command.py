"""What `isobox run` and `isobox create` do once their flags are parsed (by typer or by the fast path): the spec,
Docker's client-side options (--cidfile, -a, --pull), and the warnings of options the host ignores."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from isobox.cli import output
from isobox.cli.spec_flags import RunFlags, build_spec

if TYPE_CHECKING:
    from isobox.model.record import RunResult, WorkloadRecord
    from isobox.model.spec import WorkloadSpec
    from isobox.model.streams import Attach
    from isobox.service.context import Context


def _say_when_pulling(ctx: Context, image: str, flags: RunFlags) -> None:
    """Docker's line before it pulls an image the store lacks (on stderr: stdout is the workload's)."""
    from isobox.service import pulling

    if flags.pull.lower() == "missing" and not pulling.is_local(ctx, image):
        sys.stderr.write(f"Unable to find image '{pulling.familiar(image)}' locally\n")
        sys.stderr.flush()


def _prepare(image: str, command: list[str], flags: RunFlags) -> tuple[WorkloadSpec, Context]:
    from isobox.model.options import pull_policy
    from isobox.service.context import open_context
    from isobox.service.specs import warnings

    pull_policy(flags.pull)  # a bad --pull is refused before anything else
    spec = build_spec(image, command, flags)
    for warning in warnings(spec):
        output.warn(warning)
    if flags.cidfile and os.path.exists(flags.cidfile):
        from isobox.errors import ConflictError

        raise ConflictError(f"the workload id file {flags.cidfile} exists: is another workload using it? Remove "
                            "it first", op="write --cidfile", path=flags.cidfile)
    ctx = open_context()
    _say_when_pulling(ctx, image, flags)
    return spec, ctx


def _write_cidfile(flags: RunFlags, record: WorkloadRecord) -> None:
    if not flags.cidfile:
        return
    from isobox.errors import InvalidArgumentError

    try:
        fd = os.open(flags.cidfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as out:
            out.write(record.id)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write the workload id: {exc.strerror}", op="write --cidfile",
                                   path=flags.cidfile) from exc


def _streams(spec: WorkloadSpec, flags: RunFlags) -> Attach:
    """-a: the streams a foreground run joins (the others go nowhere, as with Docker)."""
    from isobox.model.options import attached_streams
    from isobox.model.streams import Attach

    chosen = attached_streams(flags.attach)
    if not chosen:
        return Attach(stdin=0 if spec.interactive else None)
    devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    return Attach(stdin=0 if spec.interactive and "stdin" in chosen else None,
                  stdout=1 if "stdout" in chosen else devnull, stderr=2 if "stderr" in chosen else devnull)


def run_workload(image: str, command: list[str], detach: bool, flags: RunFlags) -> int:
    """Returns the exit code for the isobox process: the workload's own in the foreground."""
    from isobox.cli.terminal import raw_terminal, signal_forwarding
    from isobox.model.options import pull_policy
    from isobox.service import workloads

    if detach and flags.attach:
        from isobox.errors import InvalidArgumentError

        raise InvalidArgumentError("conflicting options: -a and -d (a detached run joins no stream)", op="run")
    spec, ctx = _prepare(image, command, flags)
    assert spec.name is not None  # build_spec names every workload: signals are passed on by that name
    pull = pull_policy(flags.pull)
    if detach:
        result = workloads.run(ctx, spec, detach=True, pull=pull)
        _write_cidfile(flags, result.record)
        output.print_line(result.record.id)
        return 0
    attach = _streams(spec, flags)
    raw = spec.tty and spec.interactive
    with raw_terminal(raw), signal_forwarding(ctx, spec.name, enabled=not raw):
        if flags.cidfile:
            record = workloads.create(ctx, spec, pull=pull)
            _write_cidfile(flags, record)
            result = _start_attached(ctx, record, spec, attach)
        else:
            result = workloads.run(ctx, spec, attach=attach, pull=pull)
    return result.exit_code if result.exit_code is not None else 0


def _start_attached(ctx: Context, record: WorkloadRecord, spec: WorkloadSpec, attach: Attach) -> RunResult:
    """start of a created workload in the foreground, removed afterwards with --rm (what workloads.run does
    after its create, which --cidfile needs to see first)."""
    from isobox.service import workloads

    try:
        result = workloads.start(ctx, record.id, attach=attach)
    except BaseException:
        if spec.remove:
            workloads.remove(ctx, record.id, force=True)
        raise
    if spec.remove:
        workloads.remove(ctx, record.id, force=True)
    return result


def create_workload(image: str, command: list[str], flags: RunFlags) -> int:
    from isobox.model.options import pull_policy
    from isobox.service import workloads

    spec, ctx = _prepare(image, command, flags)
    record = workloads.create(ctx, spec, pull=pull_policy(flags.pull))
    _write_cidfile(flags, record)
    output.print_line(record.id)
    return 0

