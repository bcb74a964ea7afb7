"""Docker's list filters (`ps --filter`, `images --filter` … and the HTTP API's ``filters`` parameter), matched
in one place for the CLI and the API.

Filters are {name: [values]}: the CLI gathers them from ``--filter name=value`` (`from_args`), the API decodes
them from its JSON parameter (api/filters.py). Within one name a value matches if any of them does (labels
excepted: all must hold, as dockerd's); across names all must match. Unknown names and bad values are refused
with Docker's wording ("invalid filter 'x'").
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from isobox.errors import InvalidArgumentError, IsoboxError, NotFoundError
from isobox.model.network import Endpoint, NetworkRecord
from isobox.model.record import WorkloadRecord
from isobox.model.status import Status
from isobox.model.volume import VolumeRecord
from isobox.service.context import Context

Filters = dict[str, list[str]]

WORKLOAD_FILTERS = ("label", "name", "id", "status", "ancestor", "network", "volume", "exited", "before", "since")
IMAGE_FILTERS = ("dangling", "label", "reference", "before", "since")
NETWORK_FILTERS = ("name", "id", "label", "driver", "type", "dangling", "scope")
VOLUME_FILTERS = ("name", "label", "dangling", "driver")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def from_args(values: Sequence[str], allowed: Iterable[str], *, op: str) -> Filters:
    """``--filter`` values (``name=value``, repeatable) as Filters; Docker's messages for bad ones."""
    known = set(allowed)
    result: Filters = {}
    for item in values:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep:
            raise InvalidArgumentError(f"bad format of filter (expected name=value): {item!r}", op=op)
        if name not in known:
            raise InvalidArgumentError(f"invalid filter '{name}' (use {', '.join(sorted(known))})", op=op)
        result.setdefault(name, []).append(value)
    return result


def label_matches(labels: Mapping[str, str], wanted: Iterable[str]) -> bool:
    """Every ``key``, ``key=value`` or ``key!=value`` of ``wanted`` holds for ``labels``."""
    for item in wanted:
        if "!=" in item:
            key, _, value = item.partition("!=")
            if labels.get(key) == value:
                return False
        elif "=" in item:
            key, _, value = item.partition("=")
            if labels.get(key) != value:
                return False
        elif item not in labels:
            return False
    return True


def bool_filter(filters: Filters, name: str) -> bool | None:
    """A true/false filter such as dangling; None when absent."""
    values = filters.get(name)
    if not values:
        return None
    value = values[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidArgumentError(f"invalid value {values[-1]!r} for filter '{name}': use true or false",
                                   op="decode filters")
    return value in ("true", "1")


def any_matches(filters: Filters, name: str, candidates: Iterable[str]) -> bool:
    """No filter of this name, or one of its values equal to one of ``candidates``."""
    values = filters.get(name)
    if not values:
        return True
    present = set(candidates)
    return any(v in present for v in values)


# ---- workloads --------------------------------------------------------------------------------


def _familiar(name: str) -> str:
    from isobox.service.inspect import familiar

    return familiar(name)


def _ancestor(record: WorkloadRecord, wanted: str) -> bool:
    image_id = record.plan.image_id
    bare = wanted.removeprefix("sha256:")
    if len(bare) >= 4 and image_id.removeprefix("sha256:").startswith(bare):
        return True
    return _familiar(record.plan.image) == _familiar(wanted) or record.plan.image == wanted


def _name_matches(patterns: list[str], name: str) -> bool:
    """Docker matches names as regular expressions (`name=^web`); a pattern that is no valid one is refused."""
    for pattern in patterns:
        try:
            if re.search(pattern.removeprefix("/"), name):
                return True
        except re.error as exc:
            raise InvalidArgumentError(f"invalid filter 'name={pattern}': {exc}", op="list workloads") from exc
    return False


def _workload_matches(record: WorkloadRecord, chosen: Filters, others: Mapping[str, WorkloadRecord]) -> bool:
    network = record.plan.network
    interfaces = network.interfaces if network is not None else ()
    mounts = record.plan.mounts
    # In this order, cheapest first; `and` stops at the first that fails.
    return (
        label_matches(dict(record.plan.labels), chosen.get("label", []))
        and (not chosen.get("name") or _name_matches(chosen["name"], record.name))
        and (not chosen.get("id") or any(record.id.startswith(i) for i in chosen["id"]))
        and any_matches(chosen, "status", [record.status.value])
        and (not chosen.get("ancestor") or any(_ancestor(record, a) for a in chosen["ancestor"]))
        and any_matches(chosen, "network", [n for i in interfaces for n in (i.network, i.network_id)])
        and any_matches(chosen, "volume", [v for m in mounts for v in (m.volume, m.target) if v])
        and (not chosen.get("exited")
             or (record.status is Status.EXITED and str(record.exit_code) in chosen["exited"]))
        and all(record.created_at < others[b].created_at for b in chosen.get("before", []))
        and all(record.created_at > others[s].created_at for s in chosen.get("since", []))
    )


def check_workload_filters(chosen: Filters) -> None:
    for status in chosen.get("status", []):
        if status not in STATUSES:
            raise InvalidArgumentError(f"invalid filter 'status={status}' (use {', '.join(STATUSES)})",
                                       op="list workloads")
    for code in chosen.get("exited", []):
        if not code.lstrip("-").isdigit():
            raise InvalidArgumentError(f"invalid filter 'exited={code}': an exit code is a number",
                                       op="list workloads")


def workloads(ctx: Context, chosen: Filters, *, all_: bool = False, limit: int | None = None) -> list[WorkloadRecord]:
    """The workloads `ps` lists, newest first: running ones, or all with ``all_``, a status or exited
    filter or a limit (as Docker's -n implies -a); at most ``limit`` of them."""
    from isobox.service import workloads as workload_service

    check_workload_filters(chosen)
    records = workload_service.list_workloads(ctx, all=True)
    by_ref = {key: r for r in records for key in (r.name, r.id, r.short_id)}
    for ref in chosen.get("before", []) + chosen.get("since", []):
        if ref not in by_ref:
            raise NotFoundError(f"No such container: {ref}", op="list workloads", id=ref)
    show_all = all_ or bool(limit) or bool(chosen.get("status")) or bool(chosen.get("exited"))
    found = [r for r in records if (show_all or r.status in (Status.RUNNING, Status.PAUSED))
             and _workload_matches(r, chosen, by_ref)]
    return found[:limit] if limit else found


# ---- images -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageMatch:
    """An image of the store that passed the filters: its record, names and config labels."""

    record: Any  # images.store.ImageRecord
    names: tuple[str, ...]
    labels: dict[str, str]


def image_labels(ctx: Context, record: Any) -> dict[str, str]:
    """The Labels of an image's config (an unreadable config has none)."""
    try:
        labels = (ctx.images.config_document(record).get("config") or {}).get("Labels") or {}
    except IsoboxError:
        return {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _reference_matches(names: Iterable[str], patterns: list[str]) -> bool:
    """Docker's reference filter: a glob against the familiar name with and without its tag."""
    familiar = [_familiar(n) for n in names]
    return any(fnmatch.fnmatchcase(f, pattern) or fnmatch.fnmatchcase(f.rsplit(":", 1)[0], pattern)
               for f in familiar for pattern in patterns)


def images(ctx: Context, chosen: Filters) -> list[ImageMatch]:
    from isobox.service.inspect import created_unix

    dangling = bool_filter(chosen, "dangling")
    marks = {ref: created_unix(ctx.images.resolve(ref).created)
             for ref in chosen.get("before", []) + chosen.get("since", [])}
    found = []
    for record, names in ctx.images.list():
        labels = image_labels(ctx, record) if chosen.get("label") else {}
        created = created_unix(record.created)
        checks = (
            dangling is None or dangling == (not names),
            label_matches(labels, chosen.get("label", [])),
            not chosen.get("reference") or _reference_matches(names, chosen["reference"]),
            all(created < marks[b] for b in chosen.get("before", [])),
            all(created > marks[s] for s in chosen.get("since", [])),
        )
        if all(checks):
            found.append(ImageMatch(record, tuple(names), labels))
    return found


# ---- networks and volumes ---------------------------------------------------------------------


def networks(ctx: Context, chosen: Filters) -> list[tuple[NetworkRecord, list[Endpoint]]]:
    """Networks that pass the filters, each with its endpoints (the workloads on it)."""
    from isobox.service import network_state
    from isobox.service import networks as network_service

    dangling = bool_filter(chosen, "dangling")
    found = []
    for network in network_service.list_networks(ctx):
        members = network_state.endpoints(ctx, network)
        checks = (
            not chosen.get("name") or any(n in network.name for n in chosen["name"]),
            not chosen.get("id") or any(network.id.startswith(i) for i in chosen["id"]),
            label_matches(dict(network.labels), chosen.get("label", [])),
            any_matches(chosen, "driver", ["bridge"]),
            any_matches(chosen, "scope", ["local"]),
            any_matches(chosen, "type", ["builtin" if network.default else "custom"]),
            dangling is None or dangling == (not members),
        )
        if all(checks):
            found.append((network, members))
    return found


def volumes(ctx: Context, chosen: Filters) -> list[VolumeRecord]:
    from isobox.service import volumes as volume_service

    dangling = bool_filter(chosen, "dangling")
    store = volume_service.store(ctx)
    found = []
    for volume in volume_service.list_volumes(ctx):
        checks = (
            not chosen.get("name") or any(n in volume.name for n in chosen["name"]),
            label_matches(dict(volume.labels), chosen.get("label", [])),
            any_matches(chosen, "driver", ["local"]),
            dangling is None or dangling == (not store.users(volume.name)),
        )
        if all(checks):
            found.append(volume)
    return found
