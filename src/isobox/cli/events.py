"""`isobox events`: what happened to workloads, images, networks and volumes, as `docker events` shows it,
from the same events table that the API's /events reads."""

from __future__ import annotations

import typer

from isobox.cli import output


def register(app: typer.Typer) -> None:
    @app.command("events")
    def events(
        filters: list[str] = typer.Option([], "-f", "--filter",
                                          help="KEY=VALUE: type, event, container, image, network, volume, label."),
        since: str | None = typer.Option(None, "--since", help="From this time (Unix, RFC 3339, or 10m ago)."),
        until: str | None = typer.Option(None, "--until", help="Until this time; without it, follow new events."),
        format_: str | None = typer.Option(None, "--format", help="json: one JSON object per line."),
    ) -> None:
        """Show events; without --since only new ones, following until --until or Ctrl-C."""
        import json
        import sys
        import time

        from isobox.errors import InvalidArgumentError
        from isobox.model.events import check_filters
        from isobox.service import events as event_service
        from isobox.service.context import open_context
        from isobox.service.logs import parse_since

        chosen: dict[str, list[str]] = {}
        for item in filters:
            key, sep, value = item.partition("=")
            if not sep:
                raise InvalidArgumentError(f"invalid filter {item!r}: use KEY=VALUE", op="events")
            chosen.setdefault(key, []).append(value)
        check_filters(chosen)
        if format_ not in (None, "json"):
            raise InvalidArgumentError(f"unsupported --format {format_!r}: use json", op="events")
        since_ns = int(parse_since(since).timestamp() * 1e9) if since else 0
        until_ns = int(parse_since(until).timestamp() * 1e9) if until else None
        ctx = open_context()
        for event in event_service.read(ctx, chosen, since_ns=since_ns, until_ns=until_ns, follow=until is None):
            if format_ == "json":
                line = json.dumps(event_service.docker_document(event))
            else:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(event.time_ns / 1e9))
                stamp += f".{event.time_ns % 1_000_000_000:09d}" + time.strftime("%z")
                attributes = ", ".join(f"{k}={v}" for k, v in event.attributes)
                line = f"{stamp} {event.type.value} {event.action} {event.actor_id} ({attributes})"
            output.print_line(line)
            sys.stdout.flush()
