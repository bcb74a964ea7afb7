"""`isobox network create|ls|inspect|rm|prune`: virtual networks shared by containers and VMs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from isobox.cli import output

if TYPE_CHECKING:
    from isobox.service.context import Context


def _ctx() -> Context:
    from isobox.service.context import open_context

    return open_context()


def register(app: typer.Typer) -> None:
    network = typer.Typer(help="Manage networks (bridges with NAT, DNS and DHCP).", no_args_is_help=True)
    app.add_typer(network, name="network")

    @network.command("create")
    def create(
        name: str = typer.Argument(..., help="Name of the network."),
        subnet: str | None = typer.Option(None, "--subnet", help="IPv4 subnet, e.g. 10.89.0.0/24 (default: pool)."),
        gateway: str | None = typer.Option(None, "--gateway", help="Gateway (default: first address of the subnet)."),
    ) -> None:
        """Create a bridge network."""
        from isobox.service import networks

        output.out.print(networks.create(_ctx(), name, subnet=subnet, gateway=gateway).id)

    @network.command("ls")
    def ls(
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Only names."),
        json_output: bool = typer.Option(False, "--json"),
    ) -> None:
        """List networks."""
        from isobox.service import networks

        output.print_listing(
            networks.list_networks(_ctx()),
            json_output=json_output,
            quiet=quiet,
            name=lambda r: r.name,
            headers=["ID", "NAME", "SUBNET", "GATEWAY", "BRIDGE"],
            rows=lambda found: [(r.id[:12], r.name, r.subnet, r.gateway, r.bridge) for r in found],
        )

    @network.command("inspect")
    def inspect(names: list[str] = typer.Argument(...)) -> None:
        """Details of networks, with their workloads, as JSON."""
        from isobox.service import networks

        ctx = _ctx()
        output.print_json([networks.inspect(ctx, name) for name in names])

    @network.command("rm")
    def rm(names: list[str] = typer.Argument(...)) -> None:
        """Remove networks no workload is on."""
        from isobox.service import networks

        ctx = _ctx()
        for name in names:
            networks.remove(ctx, name)
            output.out.print(name)

    @network.command("prune")
    def prune(force: bool = typer.Option(False, "-f", "--force", help="Do not ask (isobox never asks).")) -> None:
        """Remove every network no workload is on."""
        from isobox.service import networks

        for record in networks.prune(_ctx()):
            output.out.print(record.name)

    @network.command("connect")
    def connect(
        name: str = typer.Argument(..., help="Network."),
        workload: str = typer.Argument(..., help="Workload (name or id)."),
        alias: list[str] = typer.Option([], "--alias", help="Extra DNS name on this network."),
        ip: str | None = typer.Option(None, "--ip", help="IPv4 address on this network."),
    ) -> None:
        """Join a workload to a network (a running container at once; a VM while stopped)."""
        from isobox.service import networks

        networks.connect(_ctx(), workload, name, aliases=tuple(alias), ip=ip)

    @network.command("disconnect")
    def disconnect(
        name: str = typer.Argument(..., help="Network."),
        workload: str = typer.Argument(..., help="Workload (name or id)."),
        force: bool = typer.Option(False, "-f", "--force", help="Even the network its ports are published on."),
    ) -> None:
        """Take a workload off a network."""
        from isobox.service import networks

        networks.disconnect(_ctx(), workload, name, force=force)
