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
        driver: str = typer.Option(
            "bridge", "-d", "--driver",
            help="bridge (this host) or overlay (every node of the cluster, over VXLAN; docs/cluster.md).",
        ),
    ) -> None:
        """Create a network."""
        from isobox.errors import InvalidArgumentError
        from isobox.model.network import NetworkDriver
        from isobox.service import networks

        try:
            kind = NetworkDriver(driver)
        except ValueError:
            raise InvalidArgumentError(f"unknown network driver {driver!r}: use bridge or overlay",
                                       op="create network", id=name) from None
        output.out.print(networks.create(_ctx(), name, subnet=subnet, gateway=gateway, driver=kind).id)

    @network.command("ls")
    def ls(
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Only network ids."),
        filters: list[str] = typer.Option([], "-f", "--filter", metavar="NAME=VALUE", help=(
            "Filter: name=TEXT, id=PREFIX, label=KEY[=VALUE], driver=bridge, type=builtin|custom, "
            "dangling=true|false, scope=local. Repeatable.")),
        format_text: str = typer.Option("", "--format", metavar="TEMPLATE", help=(
            "Go template, 'table TEMPLATE', 'table' or 'json'. Fields: ID, Name, Driver, Scope, Subnet, Gateway, "
            "Bridge, IPv6, Internal, CreatedAt, Labels, Label \"KEY\".")),
        no_trunc: bool = typer.Option(False, "--no-trunc", help="Full network ids."),
        json_output: bool = typer.Option(False, "--json", help="isobox's own JSON."),
    ) -> None:
        """List networks (also: network list).

        Example: isobox network ls --filter type=custom --format '{{.Name}} {{.Subnet}}'"""
        from isobox.cli.rows import NETWORK_HEADERS, NETWORKS_DEFAULT, NetworkRow, created_at_text
        from isobox.cli.tables import short_id
        from isobox.service import filters as matching

        found = [network for network, _ in matching.networks(
            _ctx(), matching.from_args(filters, matching.NETWORK_FILTERS, op="network ls"))]
        if quiet:
            output.write("".join(f"{short_id(n.id, no_trunc=no_trunc)}\n" for n in found))
            return
        if json_output:
            output.print_json(found)
            return
        rows = [NetworkRow(ID=short_id(n.id, no_trunc=no_trunc), Name=n.name, Driver="bridge", Scope="local",
                           Subnet=n.subnet, Gateway=n.gateway, Bridge=n.bridge, IPv6="false", Internal="false",
                           CreatedAt=created_at_text(n.created_at),
                           Labels=",".join(f"{k}={v}" for k, v in sorted(n.labels)), _labels=dict(n.labels))
                for n in found]
        output.print_formatted(rows, format_text=format_text, default_table=NETWORKS_DEFAULT,
                               headers=NETWORK_HEADERS)

    network.command("list", hidden=True)(ls)

    @network.command("inspect")
    def inspect(
        names: list[str] = typer.Argument(..., help="Network names or ids.", metavar="NETWORK"),
        format_text: str = typer.Option("", "-f", "--format", help="Go template over each document.",
                                        metavar="TEMPLATE"),
    ) -> None:
        """Networks as Docker's JSON documents, with their workloads under Containers.

        Example: isobox network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' isobox"""
        from isobox.cli.inspect import ObjectType, print_documents

        print_documents(names, [ObjectType.NETWORK], format_text)

    @network.command("rm")
    def rm(names: list[str] = typer.Argument(..., help="Network names or ids.", metavar="NETWORK")) -> None:
        """Remove networks no workload is on."""
        from isobox.service import networks

        ctx = _ctx()
        for name in names:
            networks.remove(ctx, name)
            output.out.print(name)

    @network.command("prune")
    def prune(force: bool = typer.Option(False, "-f", "--force", help="Do not ask for confirmation.")) -> None:
        """Remove every network no workload is on."""
        from isobox.cli.confirm import confirm
        from isobox.service import networks

        if not force:
            confirm("This will remove all networks no workload is on.")

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
