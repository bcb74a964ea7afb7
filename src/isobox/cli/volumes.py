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
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Only volume names."),
        filters: list[str] = typer.Option([], "-f", "--filter", metavar="NAME=VALUE", help=(
            "Filter: name=TEXT, label=KEY[=VALUE], dangling=true|false, driver=local. Repeatable.")),
        format_text: str = typer.Option("", "--format", metavar="TEMPLATE", help=(
            "Go template, 'table TEMPLATE', 'table' or 'json'. Fields: Name, Driver, Scope, Type, Mountpoint, Size, "
            "Labels, CreatedAt, Label \"KEY\".")),
        json_output: bool = typer.Option(False, "--json", help="isobox's own JSON."),
    ) -> None:
        """List volumes (also: volume list).

        Example: isobox volume ls --filter dangling=true -q"""
        from isobox.cli.rows import VOLUME_HEADERS, VOLUMES_DEFAULT, VolumeRow, created_at_text
        from isobox.cli.tables import human_size
        from isobox.service import filters as matching

        found = matching.volumes(_ctx(), matching.from_args(filters, matching.VOLUME_FILTERS, op="volume ls"))
        if quiet:
            output.write("".join(f"{v.name}\n" for v in found))
            return
        if json_output:
            output.print_json(found)
            return
        rows = [VolumeRow(Name=v.name, Driver="local", Scope="local", Type=v.kind, Mountpoint=v.path,
                          Size=human_size(v.size_bytes) if v.size_bytes else "N/A",
                          Labels=",".join(f"{k}={x}" for k, x in sorted(v.labels)),
                          CreatedAt=created_at_text(v.created_at), _labels=dict(v.labels)) for v in found]
        output.print_formatted(rows, format_text=format_text, default_table=VOLUMES_DEFAULT, headers=VOLUME_HEADERS)

    volume.command("list", hidden=True)(ls)

    @volume.command("inspect")
    def inspect(
        names: list[str] = typer.Argument(..., help="Volume names.", metavar="VOLUME"),
        format_text: str = typer.Option("", "-f", "--format", help="Go template over each document.",
                                        metavar="TEMPLATE"),
    ) -> None:
        """Volumes as Docker's JSON documents (Mountpoint, Labels, Options; isobox's type and size under Isobox).

        Example: isobox volume inspect -f '{{.Mountpoint}}' data"""
        from isobox.cli.inspect import ObjectType, print_documents

        print_documents(names, [ObjectType.VOLUME], format_text)

    @volume.command("rm")
    def rm(
        names: list[str] = typer.Argument(..., help="Volume names.", metavar="VOLUME"),
        force: bool = typer.Option(False, "-f", "--force", help="Remove even if a workload uses it."),
    ) -> None:
        """Remove volumes (refused while a workload uses them)."""
        from isobox.service import volumes

        ctx = _ctx()
        for name in names:
            volumes.remove(ctx, name, force=force)
            output.out.print(name)

    @volume.command("prune")
    def prune(force: bool = typer.Option(False, "-f", "--force", help="Do not ask for confirmation.")) -> None:
        """Remove every volume no workload uses."""
        from isobox.cli.confirm import confirm
        from isobox.service import volumes

        if not force:
            confirm("This will remove all volumes no workload uses.")

        for name in volumes.prune(_ctx()):
            output.out.print(name)
