"""`isobox serve`: the Docker Engine compatible API on a unix socket (and TCP with mutual TLS)."""

from __future__ import annotations

import typer

from isobox.cli import output


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        hosts: list[str] = typer.Option(
            [], "-H", "--host",
            help="unix:///PATH (default /run/isobox/docker.sock, or ROOT/run/docker.sock with --root), "
                 "tcp://ADDR:PORT (needs --tlsverify), or fd:// (systemd socket activation). Repeatable."),
        tlsverify: bool = typer.Option(False, "--tlsverify", help="Require client certificates signed by --tlscacert."),
        tlscacert: str | None = typer.Option(None, "--tlscacert", help="CA that signs client certificates."),
        tlscert: str | None = typer.Option(None, "--tlscert", help="The server's certificate."),
        tlskey: str | None = typer.Option(None, "--tlskey", help="The server's private key."),
        insecure_registries: list[str] = typer.Option(
            [], "--insecure-registry",
            help="Registry (HOST:PORT) to reach without TLS verification (loopback ones always are). Repeatable."),
        background: bool = typer.Option(
            False, "--background",
            help="As started by isobox itself when a workload needs the engine: exit quietly if one runs."),
    ) -> None:
        """Serve Docker's Engine API (1.44) over isobox: the docker CLI, docker-py and Compose drive
        containers and VMs (HostConfig.Isolation = "vm"). Runs until SIGTERM or SIGINT."""
        import asyncio
        import signal
        from pathlib import Path

        from isobox.api import listeners as listening
        from isobox.api import server
        from isobox.api.app import App, build_router
        from isobox.api.workers import Workers, root_from_env
        from isobox.errors import ConflictError, InvalidArgumentError
        from isobox.service import engine
        from isobox.service.context import open_context
        from isobox.service.supervisor import Supervisor

        tls = None
        if tlsverify:
            if not (tlscacert and tlscert and tlskey):
                raise InvalidArgumentError("--tlsverify needs --tlscacert, --tlscert and --tlskey", op="serve")
            tls = listening.TlsFiles(Path(tlscacert), Path(tlscert), Path(tlskey))
        elif tlscacert or tlscert or tlskey:
            raise InvalidArgumentError("TLS files without --tlsverify: isobox serves TCP only with mutual TLS",
                                       op="serve")
        ctx = open_context()  # root, and the state directories, before anything listens
        default_socket = engine.default_socket(ctx)
        other = engine.running(ctx)
        if other is not None:
            ctx.close()
            if background:
                return
            raise ConflictError(f"the isobox engine of this root runs already (pid {other.pid}, {other.socket})",
                                op="serve")
        listeners = listening.open_listeners(hosts, tls, default_socket)
        workers = Workers(root_from_env())
        app_state = App(workers, tuple(insecure_registries))
        supervisor = Supervisor(root_from_env())
        unix = next((listener.owned_path for listener in listeners if listener.owned_path is not None), None)

        def ready() -> None:
            engine.write_info(ctx, unix or default_socket)
            supervisor.start()
            output.err.print("isobox serve: listening on " + ", ".join(listener.address for listener in listeners))

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(number, stop.set)
            await server.Server(app_state, build_router(), listeners).run(stop, ready=ready)

        try:
            asyncio.run(main())
        finally:
            engine.remove_info(ctx)
            supervisor.stop()
            for listener in listeners:
                listener.close()
            workers.close()
            ctx.close()
