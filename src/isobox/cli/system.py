"""`isobox system …` and `isobox info`."""

from __future__ import annotations

import typer

from isobox.cli import output


def register(app: typer.Typer) -> None:
    system = typer.Typer(help="Manage isobox itself.", no_args_is_help=True)
    app.add_typer(system, name="system")

    @system.command("setup-builtin")
    def setup_builtin() -> None:
        """Build the built-in busybox image into the store (scripts/setup runs this)."""
        from isobox.service import images as image_service

        record = image_service.install_builtin()
        output.out.print(f"busybox:latest {record.short_id}")

    @system.command("on-exit", hidden=True)
    def on_exit(workload_id: str = typer.Argument(...)) -> None:
        """Bookkeeping that conmon runs when a detached container exits (--rm, restart policies)."""
        from isobox.service import workloads
        from isobox.service.context import open_context

        workloads.on_exit(open_context(), workload_id)

    @app.command("info")
    def info(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """What isobox finds on this host: runtime, accelerator, kernel, state paths."""
        from isobox.service import host

        facts = host.info()
        if json_output:
            output.print_json(facts)
            return
        for key, value in facts.items():
            output.out.print(f"{key}: {value}")
