"""`isobox update`: a workload's limits and restart policy, changed after it was created."""

from __future__ import annotations

import typer

UPDATE_HELP = """Change the limits or the restart policy of workloads.

A running container gets its new limits at once; a VM gets new memory and CPUs at its next start (a running VM
cannot change them and is refused).

Examples:

  isobox update --memory 512m --cpus 1.5 web

  isobox update --restart unless-stopped web db"""


def register(app: typer.Typer) -> None:
    register_container(app)


def register_container(group: typer.Typer) -> None:
    group.command("update", help=UPDATE_HELP)(update)


def update(
    names: list[str] = typer.Argument(..., help="Workload names or ids.", metavar="WORKLOAD"),
    memory: str | None = typer.Option(None, "-m", "--memory", help="Memory limit, e.g. 256m (0: none).",
                                      metavar="SIZE"),
    cpus: float | None = typer.Option(None, "--cpus", help="CPUs (0: no limit).", metavar="NUMBER"),
    pids_limit: int | None = typer.Option(None, "--pids-limit", help="Maximum number of processes (-1: none).",
                                          metavar="N"),
    restart: str | None = typer.Option(None, "--restart", help="no | on-failure[:N] | always | unless-stopped.",
                                       metavar="POLICY"),
) -> None:
    from isobox.cli.workloads import each
    from isobox.errors import InvalidArgumentError
    from isobox.service import update as service

    if memory is None and cpus is None and pids_limit is None and restart is None:
        raise InvalidArgumentError("say what to change: --memory, --cpus, --pids-limit or --restart", op="update")
    each(names, lambda ctx, name: service.update(ctx, name, memory=memory, cpus=cpus, pids_limit=pids_limit,
                                                 restart=restart))

