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

    @system.command("df")
    def df(
        format_text: str = typer.Option("", "--format", metavar="TEMPLATE", help=(
            "Go template, 'table TEMPLATE' or 'json'. Fields: Type, TotalCount, Active, Size, Reclaimable.")),
        json_output: bool = typer.Option(False, "--json", help="isobox's own JSON, by storage area."),
    ) -> None:
        """Disk space used by images, workloads, volumes and caches, and what a prune would free."""
        from isobox.cli.rows import DF_DEFAULT, DF_HEADERS, df_rows
        from isobox.service import system as system_service
        from isobox.service.context import open_context

        ctx = open_context()
        if json_output:
            output.print_json(system_service.disk_usage(ctx))
            return
        output.print_formatted(df_rows(system_service.usage_summary(ctx)), format_text=format_text,
                               default_table=DF_DEFAULT, headers=DF_HEADERS)

    @system.command("prune")
    def prune(
        all_images: bool = typer.Option(False, "-a", "--all", help="Also images that are tagged but unused."),
        include_volumes: bool = typer.Option(False, "--volumes", help="Also volumes no workload uses."),
        force: bool = typer.Option(False, "-f", "--force", help="Do not ask for confirmation."),
    ) -> None:
        """Remove stopped workloads, unused networks, images and volumes, and unreferenced layers and blobs.

        Example: isobox system prune -a --volumes -f"""
        from isobox.cli.confirm import confirm
        from isobox.service import system as system_service
        from isobox.service.context import open_context

        if not force:
            confirm("This will remove:\n  - all stopped workloads (containers and VMs)\n"
                    "  - all networks no workload is on\n"
                    + ("  - all images no workload uses\n" if all_images else "  - all untagged images\n")
                    + ("  - all volumes no workload uses\n" if include_volumes else "")
                    + "  - the build cache\n"
                    + "  - layers and blobs no image uses\n")
        report = system_service.prune(open_context(), all_images=all_images, include_volumes=include_volumes)
        sections = (("Deleted Workloads", report.workloads), ("Deleted Networks", report.networks),
                    ("Deleted Images", report.images), ("Deleted Volumes", report.volumes))
        text = "".join(f"{title}:\n" + "".join(f"{name}\n" for name in names) + "\n"
                       for title, names in sections if names)
        output.write(text + f"Removed {len(report.workloads)} workloads, {len(report.networks)} networks, "
                     f"{len(report.images)} images, {len(report.volumes)} volumes, {report.layers_removed} layers, "
                     f"{report.blobs_removed} blobs\n")

    @system.command("check")
    def check(
        repair: bool = typer.Option(False, "--repair", help="Also record what the database lacks."),
        json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Check the state database and each record's files; rebuild the records from what is on disk (always
        when the database is damaged, empty or missing; with --repair otherwise)."""
        from isobox.service import check as checking

        report = checking.check(repair=repair)
        if json_output:
            output.print_json(report)
        else:
            output.print_line(f"database: {report.database}")
            if report.moved_to:
                output.print_line(f"  moved aside to {report.moved_to}; a new one was filled from what is on disk")
            for finding in report.findings:
                output.print_line(f"{finding.severity.value:<9} {finding.subject}: {finding.message}")
            counts = {s: sum(f.severity is s for f in report.findings) for s in checking.Severity}
            output.print_line(", ".join(f"{n} {s.value}" for s, n in counts.items()))
        if not report.clean:
            raise typer.Exit(1)

    @system.command("boot")
    def boot() -> None:
        """Start again the exited workloads whose restart policy is `always` (run at host boot by
        contrib/systemd/isobox-restart.service)."""
        from isobox.service import restarts
        from isobox.service.context import open_context

        started, failed = restarts.boot(open_context())
        for record in started:
            output.out.print(record.name)
        for record, error in failed:
            output.warn(f"{record.name}: {error}")
        if failed:
            raise typer.Exit(output.EXIT_ISOBOX_ERROR)

    @system.command("on-exit", hidden=True)
    def on_exit(workload_id: str = typer.Argument(..., help="The workload that exited.")) -> None:
        """Bookkeeping that conmon runs when a detached container exits (--rm, restart policies)."""
        from isobox.service import restarts
        from isobox.service.context import open_context

        restarts.on_exit(open_context(), workload_id)

    @system.command("rotate-logs", hidden=True)
    def rotate_logs(
        every_s: float = typer.Option(0.0, "--every", help="Repeat every SECONDS until interrupted (0: once)."),
    ) -> None:
        """Rotate the logs of running workloads by their --log-opt max-size/max-file (what the engine's
        log rotation task does), once or every SECONDS."""
        import threading

        from isobox.service import logrotate
        from isobox.service.context import open_context

        ctx = open_context()
        if every_s <= 0:
            logrotate.rotate(ctx)
            return
        try:
            logrotate.loop(ctx, threading.Event(), every_s)
        except KeyboardInterrupt:
            return

    @app.command("info")
    def info(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """What isobox finds on this host.

        The runtime, the VM accelerator, the kernel, the state paths."""
        from isobox.service import host

        facts = host.info()
        if json_output:
            output.print_json(facts)
            return
        for key, value in facts.items():
            output.out.print(f"{key}: {value}")
