"""Workload commands, the same for containers and VMs: run, create, start, stop, kill, restart, pause, unpause,
rm, logs, exec, wait, attach, commit, rename. `--vm` picks the VM driver; everything else is shared.

Commands that take several workloads act on each, as Docker's do: a name that fails is reported on stderr and
the others are still done; the exit code is then 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from isobox.cli import output
from isobox.cli.run_command import create_workload, run_workload
from isobox.cli.spec_flags import RunFlags, with_run_flags
from isobox.cli.terminal import raw_terminal

if TYPE_CHECKING:
    from isobox.service.context import Context

FOREGROUND = {"allow_interspersed_args": False, "ignore_unknown_options": False}
NAMES = typer.Argument(..., help="Workload names or ids.", metavar="WORKLOAD")
RUN_HELP = """Run a command in a new container (or a VM with --vm).

Options come before IMAGE; everything after it is the command.

Examples:

  isobox run --rm busybox echo hello

  isobox run -d --name web -p 8080:80 nginx

  isobox run -it --vm busybox sh

  isobox run --rm -v ./data:/data -e MODE=test busybox ls /data"""
EXEC_HELP = """Run a command in a running workload.

Examples:

  isobox exec web ls /

  isobox exec -it web sh"""


def _ctx() -> Context:
    from isobox.service.context import open_context

    return open_context()


def each(names: list[str], action: Callable[[Context, str], object], *, echo: bool = True) -> None:
    """``action`` on every name; failures reported one by one, then exit 1 (Docker's behaviour)."""
    from isobox.errors import IsoboxError

    ctx = _ctx()
    failed = False
    for name in names:
        try:
            action(ctx, name)
        except IsoboxError as exc:
            failed = True
            output.error(str(exc))
            continue
        if echo:
            output.print_line(name)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    @app.command("run", context_settings=FOREGROUND, help=RUN_HELP)
    @with_run_flags
    def run(
        image: str = typer.Argument(..., help="Image to run."),
        command: list[str] = typer.Argument(None, help="Command and arguments (default: the image's).",
                                            metavar="COMMAND"),
        detach: bool = typer.Option(False, "-d", "--detach", help="Run in the background, print the id."),
        *,
        flags: RunFlags,
    ) -> None:
        raise typer.Exit(run_workload(image, command or [], detach, flags))

    @app.command("create", context_settings=FOREGROUND)
    @with_run_flags
    def create(
        image: str = typer.Argument(..., help="Image to create the workload from."),
        command: list[str] = typer.Argument(None, help="Command and arguments (default: the image's).",
                                            metavar="COMMAND"),
        *,
        flags: RunFlags,
    ) -> None:
        """Create a workload without starting it; prints its id.

        Takes the flags of `run`.

        Example: isobox create --name job busybox echo done && isobox start -a job"""
        raise typer.Exit(create_workload(image, command or [], flags))

    _register_lifecycle(app)
    _register_io(app)


def register_container(group: typer.Typer) -> None:
    """The same commands in `isobox container …`."""
    register(group)


def _register_lifecycle(app: typer.Typer) -> None:
    @app.command("start")
    def start(
        names: list[str] = NAMES,
        attach: bool = typer.Option(False, "-a", "--attach", help="Attach to output and return the exit code."),
    ) -> None:
        """Start created or stopped workloads."""
        from isobox.model.streams import Attach
        from isobox.service import workloads

        if attach:
            if len(names) > 1:
                from isobox.errors import InvalidArgumentError

                raise InvalidArgumentError("you cannot start and attach several workloads at once", op="start")
            result = workloads.start(_ctx(), names[0], attach=Attach(stdin=None))
            raise typer.Exit(result.exit_code or 0)
        each(names, lambda ctx, name: workloads.start(ctx, name))

    @app.command("stop")
    def stop(
        names: list[str] = NAMES,
        time_s: float | None = typer.Option(None, "-t", "--time", help="Seconds to wait before SIGKILL."),
    ) -> None:
        """Stop workloads.

        Sends the stop signal (SIGTERM unless --stop-signal), then SIGKILL after -t seconds."""
        from isobox.service import control

        each(names, lambda ctx, name: control.stop(ctx, name, timeout_s=time_s))

    @app.command("kill")
    def kill(
        names: list[str] = NAMES,
        signal_name: str = typer.Option("KILL", "-s", "--signal", help="Signal to send (name or number)."),
    ) -> None:
        """Send a signal to workloads."""
        from isobox.model.plan import parse_signal
        from isobox.service import control

        number = parse_signal(signal_name)
        each(names, lambda ctx, name: control.kill(ctx, name, number))

    @app.command("pause")
    def pause(names: list[str] = NAMES) -> None:
        """Freeze workloads.

        Every process of a container, every vCPU of a VM."""
        from isobox.service import control

        each(names, control.pause)

    @app.command("unpause")
    def unpause(names: list[str] = NAMES) -> None:
        """Let paused workloads run on."""
        from isobox.service import control

        each(names, control.unpause)

    @app.command("restart")
    def restart(
        names: list[str] = NAMES,
        time_s: float | None = typer.Option(None, "-t", "--time", help="Seconds to wait before SIGKILL."),
    ) -> None:
        """Stop then start workloads."""
        from isobox.service import control

        each(names, lambda ctx, name: control.restart(ctx, name, timeout_s=time_s))

    @app.command("rm")
    def rm(
        names: list[str] = NAMES,
        force: bool = typer.Option(False, "-f", "--force", help="Kill running workloads first."),
        volumes: bool = typer.Option(False, "-v", "--volumes", help="Also remove their anonymous volumes."),
    ) -> None:
        """Remove workloads.

        A name that fails is reported and the others are still removed (exit code 1)."""
        from isobox.service import workloads

        each(names, lambda ctx, name: workloads.remove(ctx, name, force=force, volumes=volumes))

    @app.command("wait")
    def wait(names: list[str] = NAMES) -> None:
        """Wait for workloads to exit; print their exit codes."""
        from isobox.service import control

        def waited(ctx: Context, name: str) -> None:
            record = control.wait(ctx, name)
            output.print_line(str(record.exit_code if record.exit_code is not None else ""))

        each(names, waited, echo=False)

    @app.command("rename")
    def rename(
        name: str = typer.Argument(..., help="The workload.", metavar="WORKLOAD"),
        new_name: str = typer.Argument(..., help="Its new name.", metavar="NEW_NAME"),
    ) -> None:
        """Rename a workload.

        In any state; on its networks the new name resolves from now on."""
        from isobox.service import control

        control.rename(_ctx(), name, new_name)

    @app.command("commit")
    def commit(
        name: str = typer.Argument(..., help="Container, or stopped VM, to commit.", metavar="WORKLOAD"),
        image: str = typer.Argument(..., help="Name of the new image.", metavar="IMAGE"),
        message: str = typer.Option("", "-m", "--message", help="Commit message."),
        author: str = typer.Option("", "-a", "--author", help="Author, e.g. \"Name <mail>\"."),
    ) -> None:
        """Save a workload's changes as a new image.

        The image is usable by both drivers, and pushable.

        Example: isobox commit web localhost/web:patched"""
        from isobox.service import commit as commit_service

        record = commit_service.commit(_ctx(), name, image, message=message, author=author)
        output.print_line(record.id)


def _register_io(app: typer.Typer) -> None:
    @app.command("attach", context_settings=FOREGROUND)
    def attach(
        name: str = typer.Argument(..., help="A running workload.", metavar="WORKLOAD"),
        no_stdin: bool = typer.Option(False, "--no-stdin", help="Do not pass stdin on."),
    ) -> None:
        """Join a running workload's output and input.

        Its output (and stdin, if it runs with -i) until it ends; detach from a terminal with ctrl-p
        ctrl-q. Exits with the workload's exit code."""
        from isobox.cli.terminal import signal_forwarding
        from isobox.model.streams import Attach
        from isobox.service import control, workloads

        ctx = _ctx()
        process = workloads.get(ctx, name).plan.process
        interactive = process.interactive and not no_stdin
        # Without a terminal, ^C and the like go to the workload (Docker's --sig-proxy); a terminal
        # passes them on as keys.
        with raw_terminal(process.tty and interactive), signal_forwarding(ctx, name, enabled=not process.tty):
            code = control.attach(ctx, name, Attach(stdin=0 if interactive else None))
        raise typer.Exit(0 if code is None else code)

    @app.command("logs")
    def logs(
        name: str = typer.Argument(..., help="A workload.", metavar="WORKLOAD"),
        follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new output."),
        timestamps: bool = typer.Option(False, "-t", "--timestamps", help="Prefix each line with its time."),
        since: str | None = typer.Option(None, "--since", help="Duration (10m) or RFC 3339 time."),
        tail: str = typer.Option("all", "-n", "--tail", help="Lines from the end."),
    ) -> None:
        """Print a workload's output.

        Its stdout to stdout, its stderr to stderr.

        Example: isobox logs -f --tail 20 web"""
        from isobox.service import logs as log_service

        for entry in log_service.read(_ctx(), name, follow=follow, since=since, tail=tail):
            target = sys.stderr.buffer if entry.stream == "stderr" else sys.stdout.buffer
            prefix = f"{entry.timestamp} ".encode() if timestamps else b""
            target.write(prefix + entry.content + (b"" if entry.partial else b"\n"))
            target.flush()

    @app.command("exec", context_settings=FOREGROUND, help=EXEC_HELP)
    def exec_(
        name: str = typer.Argument(..., help="A running workload.", metavar="WORKLOAD"),
        command: list[str] = typer.Argument(..., help="Command and arguments.", metavar="COMMAND"),
        interactive: bool = typer.Option(False, "-i", "--interactive", help="Pass stdin on."),
        tty: bool = typer.Option(False, "-t", "--tty", help="Allocate a terminal."),
        detach: bool = typer.Option(False, "-d", "--detach", help="Run in the background."),
        env: list[str] = typer.Option([], "-e", "--env", help="KEY=VALUE (repeatable).", metavar="KEY=VALUE"),
        workdir: str | None = typer.Option(None, "-w", "--workdir", help="Working directory."),
        user: str | None = typer.Option(None, "-u", "--user", help="user[:group], names or ids."),
    ) -> None:
        from isobox.model.spec import parse_env
        from isobox.model.streams import ExecSpec
        from isobox.service import control

        spec = ExecSpec(tuple(command), parse_env(env, dict(os.environ)), workdir, user, tty, interactive, detach)
        with raw_terminal(tty and interactive):
            code = control.exec(_ctx(), name, spec)
        raise typer.Exit(code)
