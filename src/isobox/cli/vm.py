"""`isobox vm create` (any-OS VMs from a disk image), `isobox console`, and `isobox snapshot
create|list|restore|rm|clone` (VMs and containers). Everything else (start, stop, logs, rm ...) is shared
with containers in cli/workloads.py; the logic lives in service/vms.py and service/snapshots.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from isobox.cli import output

if TYPE_CHECKING:
    from isobox.service.context import Context


def _ctx() -> Context:
    from isobox.service.context import open_context

    return open_context()


def register(app: typer.Typer) -> None:
    vm = typer.Typer(help="Virtual machines from disk images.", no_args_is_help=True)
    app.add_typer(vm, name="vm")
    snapshot = typer.Typer(
        help="Snapshots of VMs (disk, and memory when running) and of containers (writable layer).",
        no_args_is_help=True,
    )
    app.add_typer(snapshot, name="snapshot")
    _register_vm(app, vm)
    _register_snapshot(snapshot)


def _register_vm(app: typer.Typer, vm: typer.Typer) -> None:

    @vm.command("create")
    def vm_create(
        disk: Path = typer.Option(..., "--disk", help="Disk image (qcow2 or raw); never written."),
        cdrom: Path | None = typer.Option(None, "--cdrom", help="ISO image, booted first."),
        cloud_init: Path | None = typer.Option(None, "--cloud-init", help="cloud-init user-data file."),
        name: str | None = typer.Option(None, "--name", help="Name of the VM.", metavar="NAME"),
        memory: str | None = typer.Option(None, "-m", "--memory", help="Guest RAM, e.g. 1g (default 256m)."),
        cpus: float | None = typer.Option(None, "--cpus", help="vCPUs."),
        start: bool = typer.Option(False, "--start", help="Start it too."),
        firmware: str = typer.Option("bios", "--firmware", help="bios (SeaBIOS) or uefi (OVMF)."),
    ) -> None:
        """Create a VM that boots a disk image through firmware (SeaBIOS, or OVMF for UEFI); prints its id."""
        from isobox.model.spec import parse_size
        from isobox.service import vms

        record = vms.create_disk_vm(
            _ctx(),
            disk,
            cdrom=cdrom,
            cloud_init=cloud_init,
            name=name,
            cpus=cpus,
            start=start,
            memory_bytes=parse_size(memory, what="memory") if memory else None,
            firmware=firmware,
        )
        output.out.print(record.id)

    @app.command("console")
    def console(name: str = typer.Argument(..., help="A VM booted from a disk image.", metavar="VM")) -> None:
        """Attach to a disk VM's serial console (detach with Ctrl-])."""
        from isobox.cli.terminal import raw_terminal
        from isobox.model.streams import Attach
        from isobox.service import control, workloads

        ctx = _ctx()
        workloads.get(ctx, name)  # a missing workload is reported before the terminal is touched
        output.err.print("[dim]attaching; Ctrl-] detaches[/dim]", markup=True)
        with raw_terminal(sys.stdin.isatty()):
            control.console(ctx, name, Attach(stdin=0, stdout=1, stderr=2))


def _register_snapshot(snapshot: typer.Typer) -> None:
    @snapshot.command("create")
    def snapshot_create(
        workload: str = typer.Argument(..., help="A workload.", metavar="WORKLOAD"),
        name: str = typer.Argument(..., help="The snapshot's name.", metavar="SNAPSHOT"),
    ) -> None:
        """Snapshot a workload: a VM's disk (plus memory and devices if it runs), a container's writable
        layer (plus its processes if it runs and CRIU works on this host)."""
        from isobox.service import snapshots as snapshot_service

        made = snapshot_service.create(_ctx(), workload, name)
        output.out.print(f"{made.name} ({made.content})")
        if made.note:
            output.warn(made.note)

    @snapshot.command("list")
    def snapshot_list(
        workload: str = typer.Argument(..., help="A workload.", metavar="WORKLOAD"),
        json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List a workload's snapshots (also: snapshot ls)."""
        from isobox.cli.tables import time_ago
        from isobox.service import snapshots as snapshot_service

        found = snapshot_service.list_snapshots(_ctx(), workload)
        if json_output:
            output.print_json(found)
            return
        now = time.time()
        output.print_table(["NAME", "CONTENT", "CREATED"], [(s.name, s.content, time_ago(s.created_at, now))
                                                            for s in found])

    snapshot.command("ls", hidden=True)(snapshot_list)

    @snapshot.command("restore")
    def snapshot_restore(
        workload: str = typer.Argument(..., help="A workload.", metavar="WORKLOAD"),
        name: str = typer.Argument(..., help="The snapshot's name.", metavar="SNAPSHOT"),
    ) -> None:
        """Go back to a snapshot; a VM memory snapshot resumes where it was, a running container restarts."""
        from isobox.service import snapshots as snapshot_service

        snapshot_service.restore(_ctx(), workload, name)
        output.out.print(name)

    @snapshot.command("rm")
    def snapshot_rm(
        workload: str = typer.Argument(..., help="A workload.", metavar="WORKLOAD"),
        name: str = typer.Argument(..., help="The snapshot's name.", metavar="SNAPSHOT"),
    ) -> None:
        """Remove a snapshot."""
        from isobox.service import snapshots as snapshot_service

        snapshot_service.remove(_ctx(), workload, name)
        output.out.print(name)

    @snapshot.command("clone")
    def snapshot_clone(
        workload: str = typer.Argument(..., help="The VM whose snapshot starts the new one.", metavar="VM"),
        name: str = typer.Argument(..., help="The snapshot.", metavar="SNAPSHOT"),
        new_name: str | None = typer.Option(None, "--name", help="Name of the new VM."),
    ) -> None:
        """Start a new VM from a snapshot of another (the fast start path); prints its id."""
        from isobox.service import snapshots as snapshot_service

        output.out.print(snapshot_service.clone(_ctx(), workload, name, new_name).id)
