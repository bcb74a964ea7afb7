"""`isobox volume create|ls|inspect|rm|prune`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from isobox.cli import output

if TYPE_CHECKING:
    from isobox.service.context import Context


def register(app: typer.Typer) -> None:
    volume = typer.Typer(help="Manage volumes (shared by containers and VMs).", no_args_is_help=True)
    app.add_typer(volume, name="volume")

    def _ctx() -> Context:
        from isobox.service.context import open_context

        return open_context()

    @volume.command("create")
    def create(
        name: str | None = typer.Argument(None, help="Name (random if omitted)."),
        opt: list[str] = typer.Option(
            [], "-o", "--opt", help="type=dir (default: shared by containers and VMs) or type=disk; size=SIZE (disk)."
        ),
    ) -> None:
        """Create a named volume: a directory, or with --opt type=disk an ext4 disk for VMs."""
        from isobox.service import volumes

        output.out.print(volumes.create(_ctx(), name, tuple(opt)).name)

    @volume.command("resize")
    def resize(
        name: str = typer.Argument(..., help="A disk volume."),
        size: str = typer.Argument(..., help="New size, e.g. 20g (grow only)."),
    ) -> None:
        """Grow a disk volume and its file system (no running workload may use it)."""
        from isobox.service import volumes

        record = volumes.resize(_ctx(), name, size)
        output.out.print(f"{record.name} {record.size_bytes}")

    @volume.command("ls")
    def ls(
        quiet: bool = typer.Option(False, "-q", "--quiet"),
        json_output: bool = typer.Option(False, "--json"),
    ) -> None:
        """List volumes."""
        from isobox.service import volumes

        output.print_listing(
            volumes.list_volumes(_ctx()),
            json_output=json_output,
            quiet=quiet,
            name=lambda r: r.name,
            headers=["NAME", "TYPE", "SIZE", "ANONYMOUS", "PATH"],
            rows=lambda found: [(r.name, r.kind, r.size_bytes or "", r.anonymous, r.path) for r in found],
        )

    @volume.command("inspect")
    def inspect(names: list[str] = typer.Argument(...)) -> None:
        """Details of volumes as JSON."""
        from isobox.service import volumes

        ctx = _ctx()
        output.print_json([volumes.inspect(ctx, n) for n in names])

    @volume.command("rm")
    def rm(
        names: list[str] = typer.Argument(...),
        force: bool = typer.Option(False, "-f", "--force", help="Remove even if a workload uses it."),
    ) -> None:
        """Remove volumes (refused while a workload uses them)."""
        from isobox.service import volumes

        ctx = _ctx()
        for name in names:
            volumes.remove(ctx, name, force=force)
            output.out.print(name)

    @volume.command("prune")
    def prune() -> None:
        """Remove every volume no workload uses."""
        from isobox.service import volumes

        for name in volumes.prune(_ctx()):
            output.out.print(name)
