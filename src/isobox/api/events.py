"""GET /events: Docker's event stream, from the events table (service/events.py), with Docker's filters (type,
event, container, image, network, volume, label) and since/until (Unix times, RFC 3339, or durations
before now). Without ``until`` the stream follows new events until the client goes away."""

from __future__ import annotations

import json
from collections.abc import Iterator

from isobox.api import filters
from isobox.api.app import App
from isobox.api.messages import Request, Streamed
from isobox.api.routing import RouteTable
from isobox.errors import InvalidArgumentError, IsoboxError
from isobox.model.events import FILTERS, check_filters
from isobox.service import events
from isobox.service.context import Context
from isobox.service.logs import parse_since

routes = RouteTable()


def time_ns(text: str | None, what: str) -> int | None:
    if not text:
        return None
    try:
        return int(parse_since(text).timestamp() * 1_000_000_000)
    except IsoboxError:
        raise InvalidArgumentError(f"invalid {what} {text!r}: a Unix time, an RFC 3339 time or a duration",
                                   op="events") from None


@routes.get("/events", "events")
async def stream(app: App, request: Request) -> Streamed:
    chosen = filters.decode(request.arg("filters"), FILTERS)
    check_filters(chosen)
    since = time_ns(request.arg("since"), "since")
    until = time_ns(request.arg("until"), "until")
    if since is not None and until is not None and until < since:
        raise InvalidArgumentError("until is before since", op="events")

    def produce(ctx: Context) -> Iterator[bytes]:
        for event in events.read(ctx, chosen, since_ns=since or 0, until_ns=until, follow=True, stop=request.gone):
            yield json.dumps(events.docker_document(event)).encode() + b"\n"

    return Streamed(app.workers.iterate(produce, request.gone))
