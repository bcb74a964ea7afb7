"""`isobox vm create` (any-OS VMs from a disk image), `isobox console`, and `isobox snapshot
create|list|restore|rm|clone` (VMs and containers). Everything else (start, stop, logs, rm ...) is shared
with containers in cli/workloads.py; the logic lives in service/vms.py and service/snapshots.py.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from isobox.cli import output

if TYPE_CHECKING:
    from isobox.drivers.vm.driver import VMDriver
    from isobox.model.record import WorkloadRecord
    from isobox.service.context import Context

DETACH_KEY = b"\x1d"  # Ctrl-], as virsh console and telnet


def _ctx() -> Context:
    from isobox.service.context import open_context

    return open_context()


def _vm(ctx: Context, name: str) -> WorkloadRecord:
    from isobox.errors import InvalidArgumentError
    from isobox.model.spec import Kind
    from isobox.service import workloads

    record = workloads.get(ctx, name)
    if record.kind is not Kind.VM:
        raise InvalidArgumentError(f"{name} is a {record.kind.value}, not a VM", op="find VM", id=name)
    return record


def _driver(ctx: Context) -> VMDriver:
    from isobox.drivers.vm.driver import VMDriver

    return VMDriver(ctx.paths)


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
        name: str | None = typer.Option(None, "--name"),
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
    def console(name: str = typer.Argument(...)) -> None:
        """Attach to a disk VM's serial console (detach with Ctrl-])."""
        from isobox.cli.terminal import raw_terminal
        from isobox.drivers.vm import anyos

        ctx = _ctx()
        record = _vm(ctx, name)
        path = anyos.console_socket(_driver(ctx).files(record))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            try:
                conn.connect(str(path))
            except OSError as exc:
                output.fail(f"cannot attach to the console of {name}: {exc} (is it a running disk VM?)")
            output.err.print("[dim]attached; Ctrl-] detaches[/dim]", markup=True)
            with raw_terminal(sys.stdin.isatty()):
                _bridge(conn)


def _register_snapshot(snapshot: typer.Typer) -> None:
    @snapshot.command("create")
    def snapshot_create(workload: str = typer.Argument(...), name: str = typer.Argument(...)) -> None:
        """Snapshot a workload: a VM's disk (plus memory and devices if it runs), a container's writable
        layer (plus its processes if it runs and CRIU works on this host)."""
        from isobox.service import snapshots as snapshot_service

        made = snapshot_service.create(_ctx(), workload, name)
        output.out.print(f"{made.name} ({made.content})")
        if made.note:
            output.warn(made.note)

    @snapshot.command("list")
    def snapshot_list(workload: str = typer.Argument(...), json_output: bool = typer.Option(False, "--json")) -> None:
        """List a workload's snapshots."""
        from isobox.service import snapshots as snapshot_service

        found = snapshot_service.list_snapshots(_ctx(), workload)
        if json_output:
            output.print_json(found)
            return
        rows = [(s.name, s.content, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.created_at))) for s in found]
        output.print_table(["NAME", "CONTENT", "CREATED"], rows)

    @snapshot.command("restore")
    def snapshot_restore(workload: str = typer.Argument(...), name: str = typer.Argument(...)) -> None:
        """Go back to a snapshot; a VM memory snapshot resumes where it was, a running container restarts."""
        from isobox.service import snapshots as snapshot_service

        snapshot_service.restore(_ctx(), workload, name)
        output.out.print(name)

    @snapshot.command("rm")
    def snapshot_rm(workload: str = typer.Argument(...), name: str = typer.Argument(...)) -> None:
        """Remove a snapshot."""
        from isobox.service import snapshots as snapshot_service

        snapshot_service.remove(_ctx(), workload, name)
        output.out.print(name)

    @snapshot.command("clone")
    def snapshot_clone(
        workload: str = typer.Argument(...),
        name: str = typer.Argument(...),
        new_name: str | None = typer.Option(None, "--name", help="Name of the new VM."),
    ) -> None:
        """Start a new VM from a snapshot of another (the fast start path); prints its id."""
        from isobox.service import snapshots as snapshot_service

        output.out.print(snapshot_service.clone(_ctx(), workload, name, new_name).id)


def _bridge(conn: socket.socket) -> None:
    """Copy stdin to the console and the console to stdout until Ctrl-], end of input, or the VM ends."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    while True:
        ready, _, _ = select.select([conn, stdin], [], [])
        if conn in ready:
            data = conn.recv(65536)
            if not data:
                return
            os.write(stdout, data)
        if stdin in ready:
            data = os.read(stdin, 4096)
            if data and DETACH_KEY not in data:
                conn.sendall(data)
                continue
            conn.sendall(data.split(DETACH_KEY)[0])
            _detach(conn, stdout)
            return


def _detach(conn: socket.socket, stdout: int, timeout_s: float = 2.0) -> None:
    """Half-close, so QEMU reads what was sent before it sees the end (a plain close would make it
    drop unread input: chardev/char-socket.c, tcp_chr_hup), and show output until it disconnects."""
    conn.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([conn], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return
        data = conn.recv(65536)
        if not data:
            return
        os.write(stdout, data)
