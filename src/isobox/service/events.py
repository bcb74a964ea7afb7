"""Events: written by the service layer where a change happens, read and followed by `/events` and
`isobox events`.

Writing an event never fails the operation that caused it (a full disk, a locked database): the event is
logged and dropped. A container's event carries its name, image and labels as attributes (what Docker's
do, and what filters and Compose read).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from isobox.model.events import Event, EventType, matches
from isobox.model.record import WorkloadRecord
from isobox.service.context import Context

log = logging.getLogger(__name__)
FOLLOW_POLL_S = 0.2


def emit(ctx: Context, kind: EventType, action: str, actor_id: str,
         attributes: Mapping[str, str] | None = None) -> None:
    event = Event(kind, action, actor_id, tuple(sorted((attributes or {}).items())), time.time_ns())
    try:
        ctx.records.events.append(event)
    except Exception as exc:  # an event is never worth failing the operation it reports
        log.warning("event %s %s of %s not recorded: %s", kind.value, action, actor_id[:12], exc)


def container(ctx: Context, record: WorkloadRecord, action: str, **extra: str) -> None:
    attributes = {**dict(record.plan.labels), "name": record.name, "image": record.plan.image, **extra}
    emit(ctx, EventType.CONTAINER, action, record.id, attributes)


def read(ctx: Context, chosen: Mapping[str, Sequence[str]], *, since_ns: int = 0, until_ns: int | None = None,
         follow: bool = False, stop: threading.Event | None = None) -> Iterator[Event]:
    """The stored events from ``since_ns`` on (without it and following: only new ones), then, following,
    new ones as they are written until ``until_ns`` passes or ``stop`` is set."""
    repository = ctx.records.events
    last = 0 if since_ns or not follow else repository.last_id()
    while True:
        batch = repository.after(last, since_ns=since_ns, until_ns=until_ns)
        for event in batch:
            last = event.id
            if matches(event, chosen):
                yield event
        if batch:
            continue
        if not follow or (until_ns is not None and time.time_ns() > until_ns):
            return
        if stop is not None:
            if stop.wait(FOLLOW_POLL_S):
                return
        else:
            time.sleep(FOLLOW_POLL_S)


def docker_document(event: Event) -> dict[str, object]:
    """Docker's events message (with the old top-level fields that older clients read)."""
    attributes = dict(event.attributes)
    document: dict[str, object] = {
        "Type": event.type.value, "Action": event.action, "Actor": {"ID": event.actor_id, "Attributes": attributes},
        "scope": "local", "time": event.time_ns // 1_000_000_000, "timeNano": event.time_ns,
    }
    if event.type is EventType.CONTAINER:
        document.update(status=event.action, id=event.actor_id, **{"from": attributes.get("image", "")})
    return document
