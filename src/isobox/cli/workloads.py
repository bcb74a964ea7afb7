"""Workload commands, the same for containers and VMs: run, create, start, stop, kill, restart, rm, ps,
logs, exec, wait, inspect, top, stats. `--vm` picks the VM driver; everything else is shared."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

import typer

from isobox.cli import output
from isobox.cli.run_command import create_workload, run_workload
from isobox.cli.spec_flags import RunFlags, with_run_flags
from isobox.cli.terminal import raw_terminal

if TYPE_CHECKING:
    from isobox.service.context import Context

FOREGROUND = {"allow_interspersed_args": False, "ignore_unknown_options": False}


def _ctx() -> Context:
    from isobox.service.context import open_context

    return open_context()


def register(app: typer.Typer) -> None:
    @app.command("run", context_settings=FOREGROUND)
    @with_run_flags
    def run(
        image: str = typer.Argument(..., help="Image to run."),
        command: list[str] = typer.Argument(None, help="Command and arguments (default: the image's)."),
        detach: bool = typer.Option(False, "-d", "--detach", help="Run in the background, print the id."),
        *,
        flags: RunFlags,
    ) -> None:
        """Run a command in a new container (or VM with --vm)."""
        raise typer.Exit(run_workload(image, command or [], detach, flags))

    @app.command("create", context_settings=FOREGROUND)
    @with_run_flags
    def create(
        image: str = typer.Argument(...),
        command: list[str] = typer.Argument(None),
        *,
        flags: RunFlags,
    ) -> None:
        """Create a workload without starting it; prints its id."""
        create_workload(image, command or [], flags)

    @app.command("start")
    def start(
        names: list[str] = typer.Argument(...),
        attach: bool = typer.Option(False, "-a", "--attach", help="Attach to output and return the exit code."),
    ) -> None:
        """Start created or stopped workloads."""
        from isobox.model.streams import Attach
        from isobox.service import workloads

        ctx = _ctx()
        for name in names:
            result = workloads.start(ctx, name, attach=Attach(stdin=None) if attach else None)
            if attach:
                raise typer.Exit(result.exit_code or 0)
            output.out.print(name)

    @app.command("stop")
    def stop(
        names: list[str] = typer.Argument(...),
        time_s: float | None = typer.Option(None, "-t", "--time", help="Seconds to wait before SIGKILL."),
    ) -> None:
        """Stop workloads: the stop signal (SIGTERM), then SIGKILL after -t seconds."""
        from isobox.service import control

        ctx = _ctx()
        for name in names:
            control.stop(ctx, name, timeout_s=time_s)
            output.out.print(name)

    @app.command("kill")
    def kill(
        names: list[str] = typer.Argument(...),
        signal_name: str = typer.Option("KILL", "-s", "--signal", help="Signal to send."),
    ) -> None:
        """Send a signal to workloads."""
        from isobox.model.plan import parse_signal
        from isobox.service import control

        ctx = _ctx()
        for name in names:
            control.kill(ctx, name, parse_signal(signal_name))
            output.out.print(name)

    @app.command("attach", context_settings=FOREGROUND)
    def attach(
        name: str = typer.Argument(...),
        no_stdin: bool = typer.Option(False, "--no-stdin", help="Do not pass stdin on."),
    ) -> None:
        """Join a running workload's output (and stdin, if it runs with -i) until it ends; detach from a
        terminal with ctrl-p ctrl-q. Exits with the workload's exit code."""
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

    @app.command("pause")
    def pause(names: list[str] = typer.Argument(...)) -> None:
        """Freeze workloads: every process of a container, every vCPU of a VM."""
        from isobox.service import control

        ctx = _ctx()
        for name in names:
            control.pause(ctx, name)
            output.out.print(name)

    @app.command("unpause")
    def unpause(names: list[str] = typer.Argument(...)) -> None:
        """Let paused workloads run on."""
        from isobox.service import control

        ctx = _ctx()
        for name in names:
            control.unpause(ctx, name)
            output.out.print(name)

    @app.command("restart")
    def restart(
        names: list[str] = typer.Argument(...),
        time_s: float | None = typer.Option(None, "-t", "--time"),
    ) -> None:
        """Stop then start workloads."""
        from isobox.service import control

        ctx = _ctx()
        for name in names:
            control.restart(ctx, name, timeout_s=time_s)
            output.out.print(name)

    @app.command("rm")
    def rm(
        names: list[str] = typer.Argument(...),
        force: bool = typer.Option(False, "-f", "--force", help="Kill running workloads first."),
        volumes: bool = typer.Option(False, "-v", "--volumes", help="Also remove their anonymous volumes."),
    ) -> None:
        """Remove workloads."""
        from isobox.service import workloads

        ctx = _ctx()
        for name in names:
            workloads.remove(ctx, name, force=force, volumes=volumes)
            output.out.print(name)

    @app.command("ps")
    def ps(
        all_: bool = typer.Option(False, "-a", "--all", help="Show all, not only running."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Only ids."),
        json_output: bool = typer.Option(False, "--json"),
    ) -> None:
        """List workloads."""
        from isobox.service import workloads

        output.print_listing(
            workloads.list_workloads(_ctx(), all=all_),
            json_output=json_output,
            quiet=quiet,
            name=lambda r: r.short_id,
            headers=["ID", "KIND", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAME"],
            rows=lambda found: [
                (
                    r.short_id,
                    r.kind.value,
                    r.plan.image,
                    _truncate(" ".join(r.plan.process.argv), 32),
                    _ago(r.created_at),
                    _status_text(r),
                    r.name,
                )
                for r in found
            ],
            as_json=lambda found: [_summary(r) for r in found],
        )

    @app.command("logs")
    def logs(
        name: str = typer.Argument(...),
        follow: bool = typer.Option(False, "-f", "--follow"),
        timestamps: bool = typer.Option(False, "-t", "--timestamps"),
        since: str | None = typer.Option(None, "--since", help="Duration (10m) or RFC 3339 time."),
        tail: str = typer.Option("all", "-n", "--tail", help="Lines from the end."),
    ) -> None:
        """Print a workload's output (stdout to stdout, stderr to stderr)."""
        from isobox.service import logs as log_service

        for entry in log_service.read(_ctx(), name, follow=follow, since=since, tail=tail):
            target = sys.stderr.buffer if entry.stream == "stderr" else sys.stdout.buffer
            prefix = f"{entry.timestamp} ".encode() if timestamps else b""
            target.write(prefix + entry.content + (b"" if entry.partial else b"\n"))
            target.flush()

    @app.command("exec", context_settings=FOREGROUND)
    def exec_(
        name: str = typer.Argument(...),
        command: list[str] = typer.Argument(...),
        interactive: bool = typer.Option(False, "-i", "--interactive"),
        tty: bool = typer.Option(False, "-t", "--tty"),
        detach: bool = typer.Option(False, "-d", "--detach"),
        env: list[str] = typer.Option([], "-e", "--env"),
        workdir: str | None = typer.Option(None, "-w", "--workdir"),
        user: str | None = typer.Option(None, "-u", "--user"),
    ) -> None:
        """Run a command in a running workload."""
        from isobox.model.spec import parse_env
        from isobox.model.streams import ExecSpec
        from isobox.service import control

        spec = ExecSpec(tuple(command), parse_env(env, dict(os.environ)), workdir, user, tty, interactive, detach)
        with raw_terminal(tty and interactive):
            code = control.exec(_ctx(), name, spec)
        raise typer.Exit(code)

    @app.command("wait")
    def wait(names: list[str] = typer.Argument(...)) -> None:
        """Wait for workloads to exit; print their exit codes."""
        from isobox.service import control

        ctx = _ctx()
        for name in names:
            record = control.wait(ctx, name)
            output.out.print(str(record.exit_code if record.exit_code is not None else ""))

    @app.command("inspect")
    def inspect(names: list[str] = typer.Argument(...)) -> None:
        """Details of workloads (or images) as JSON."""
        from isobox.errors import NotFoundError
        from isobox.service import workloads

        ctx = _ctx()
        found: list[object] = []
        for name in names:
            try:
                found.append(workloads.get(ctx, name))
            except NotFoundError:
                from isobox.service import images as image_service

                try:
                    found.append(image_service.inspect(ctx, name))
                except NotFoundError:
                    raise NotFoundError(f"no such workload or image: {name}", op="inspect", id=name) from None
        output.print_json(found)

    @app.command("commit")
    def commit(
        name: str = typer.Argument(..., help="Container, or stopped VM, to commit."),
        image: str = typer.Argument(..., help="Name of the new image."),
        message: str = typer.Option("", "-m", "--message"),
        author: str = typer.Option("", "-a", "--author"),
    ) -> None:
        """Save a container's changes as a new image (usable by both drivers, pushable)."""
        from isobox.service import commit as commit_service

        record = commit_service.commit(_ctx(), name, image, message=message, author=author)
        output.out.print(record.id)

    @app.command("top")
    def top(name: str = typer.Argument(...)) -> None:
        """Processes of a running workload."""
        from isobox.service import control

        table = control.top(_ctx(), name)
        output.print_table(list(table.titles), [list(row) for row in table.rows])

    @app.command("stats")
    def stats(
        names: list[str] = typer.Argument(None),
        json_output: bool = typer.Option(False, "--json"),
    ) -> None:
        """CPU, memory and pids of running workloads (one sample)."""
        from isobox.service import control, workloads

        ctx = _ctx()
        targets = names or [r.id for r in workloads.list_workloads(ctx)]
        rows: list[dict[str, int | str]] = []
        for name in targets:
            record = workloads.get(ctx, name)
            s = control.stats(ctx, name)
            rows.append(
                {
                    "name": record.name,
                    "id": record.short_id,
                    "cpu_ns": s.cpu_usage_ns,
                    "memory_bytes": s.memory_bytes,
                    "memory_limit_bytes": s.memory_limit_bytes,
                    "pids": s.pids,
                }
            )
        if json_output:
            output.print_json(rows)
            return
        output.print_table(
            ["ID", "NAME", "CPU TIME", "MEM USAGE / LIMIT", "PIDS"],
            [
                (
                    r["id"],
                    r["name"],
                    f"{int(r['cpu_ns']) / 1e9:.2f}s",
                    f"{_mib(int(r['memory_bytes']))} / {_mib(int(r['memory_limit_bytes']))}",
                    r["pids"],
                )
                for r in rows
            ],
        )


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _mib(value: int) -> str:
    unlimited = value == 0 or value >= 1 << 60  # cgroup v1 reports "no limit" as a huge number
    return "-" if unlimited else f"{value / 1024 / 1024:.1f}MiB"


def _ago(then: float) -> str:
    seconds = int(time.time() - then)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} seconds ago"


def _status_text(record: object) -> str:
    from isobox.model.record import WorkloadRecord

    assert isinstance(record, WorkloadRecord)
    if record.status.value == "exited":
        oom = " (OOM killed)" if record.oom_killed else ""
        return f"Exited ({record.exit_code}){oom}"
    return record.status.value.capitalize()


def _summary(record: object) -> dict[str, object]:
    from isobox.model.record import WorkloadRecord

    assert isinstance(record, WorkloadRecord)
    return {
        "id": record.id,
        "name": record.name,
        "kind": record.kind.value,
        "image": record.plan.image,
        "command": list(record.plan.process.argv),
        "status": record.status.value,
        "exit_code": record.exit_code,
        "created_at": record.created_at,
    }
