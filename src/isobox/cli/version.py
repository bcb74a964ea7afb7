"""`isobox version`: isobox's version and those of the programs it drives, as `docker version` lays out its
client and engine."""

from __future__ import annotations

from typing import Any

import typer

from isobox.cli import output

FORMAT_HELP = "Go template over {Client: {Version, ApiVersion, PythonVersion, Os, Arch}, Server: {Components}}."


def register(app: typer.Typer) -> None:
    app.command("version")(version)


def version(format_text: str = typer.Option("", "-f", "--format", help=FORMAT_HELP, metavar="TEMPLATE")) -> None:
    """Versions of isobox and of the programs it drives.

    isobox (client and engine, one program), runc or crun, conmon and QEMU.

    Example: isobox version --format '{{.Server.Version}}'"""
    from isobox.api.routing import API_VERSION, MIN_API_VERSION, text
    from isobox.service import versions

    facts = versions.host_facts()
    found = versions.components()
    isobox_version = found[0].version
    document: dict[str, Any] = {
        "Client": {"Version": isobox_version, "ApiVersion": text(API_VERSION), "PythonVersion": facts["python"],
                   "Os": facts["os"], "Arch": facts["arch"]},
        "Server": {
            "Version": isobox_version, "ApiVersion": text(API_VERSION), "MinAPIVersion": text(MIN_API_VERSION),
            "KernelVersion": facts["kernel"], "CgroupVersion": facts["cgroups"],
            "Components": [{"Name": c.name, "Version": c.version or "not installed", "Path": c.path}
                           for c in found[1:]],
        },
    }
    if format_text:
        from isobox.cli.gotemplate import parse

        output.write(parse(format_text.replace("\\n", "\n").replace("\\t", "\t")).render(document) + "\n")
        return
    client, server = document["Client"], document["Server"]
    lines = [
        "Client:",
        f" Version:           {client['Version']}",
        f" API version:       {client['ApiVersion']}",
        f" Python version:    {client['PythonVersion']}",
        f" OS/Arch:           {client['Os']}/{client['Arch']}",
        "",
        "Server: isobox Engine",
        " Engine:",
        f"  Version:          {server['Version']}",
        f"  API version:      {server['ApiVersion']} (minimum version {server['MinAPIVersion']})",
        f"  Kernel:           {server['KernelVersion']}",
        f"  Cgroups:          {server['CgroupVersion']}",
    ]
    for component in server["Components"]:
        lines += [f" {component['Name']}:", f"  Version:          {component['Version']}"]
    output.write("\n".join(lines) + "\n")
