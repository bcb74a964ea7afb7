"""Events: what happened to a workload, image, network or volume, as Docker's event stream reports it (pure).

An event has Docker's shape: a type, an action ("create", "die", "health_status: healthy" …), the actor's
id and its attributes (a container's name, image and labels; the network of a connect …). Filters are
Docker's: type, event (the action, or its part before ": "), container, image, network, volume (by id
or name), and label (key or key=value).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from isobox.errors import InvalidArgumentError


class EventType(enum.StrEnum):
    CONTAINER = "container"
    IMAGE = "image"
    NETWORK = "network"
    VOLUME = "volume"


@dataclass(frozen=True)
class Event:
    type: EventType
    action: str
    actor_id: str
    attributes: tuple[tuple[str, str], ...] = ()
    time_ns: int = 0
    id: int = 0  # the table's sequence number: a follower resumes after the last it saw

    def attribute(self, key: str) -> str:
        return dict(self.attributes).get(key, "")


FILTERS = ("type", "event", "container", "image", "network", "volume", "label")
_BY_TYPE = {"container": EventType.CONTAINER, "image": EventType.IMAGE, "network": EventType.NETWORK,
            "volume": EventType.VOLUME}


def check_filters(chosen: Mapping[str, Sequence[str]]) -> None:
    for key in chosen:
        if key not in FILTERS:
            raise InvalidArgumentError(f"invalid filter {key!r}", op="events")
    for value in chosen.get("type", ()):
        if value not in _BY_TYPE:
            raise InvalidArgumentError(f"invalid filter 'type={value}'", op="events")


def _label_matches(attributes: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in attributes and (not sep or attributes[key] == value)


def matches(event: Event, chosen: Mapping[str, Sequence[str]]) -> bool:
    """Docker's rules: every filter key given must match; values of one key are alternatives."""
    attributes = dict(event.attributes)
    if chosen.get("type") and event.type.value not in chosen["type"]:
        return False
    if chosen.get("event") and not any(w in (event.action, event.action.split(":")[0]) for w in chosen["event"]):
        return False
    for key, kind in _BY_TYPE.items():
        wanted = chosen.get(key)
        if key == "type" or not wanted:
            continue
        names = {event.actor_id, event.actor_id[:12], attributes.get("name", "")} if event.type is kind else set()
        if kind is EventType.CONTAINER and event.type is EventType.NETWORK:
            names = {attributes.get("container", "")}
        if kind is EventType.IMAGE and event.type is EventType.CONTAINER:
            names = {attributes.get("image", "")}
        if not any(w in names or (len(w) >= 3 and event.actor_id.startswith(w) and event.type is kind)
                   for w in wanted):
            return False
    return all(_label_matches(attributes, w) for w in chosen.get("label", ()))
