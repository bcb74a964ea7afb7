"""Volumes: create (Name, Driver local, Labels, DriverOpts as isobox's volume options), list as {Volumes,
Warnings}, inspect, remove, prune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from isobox.api import errors, filters
from isobox.api.app import App
from isobox.api.messages import Reply, Request, empty, json_reply, require_type
from isobox.api.routing import RouteTable
from isobox.errors import InvalidArgumentError
from isobox.service import filters as matching
from isobox.service import inspect, volumes
from isobox.service.context import Context

routes = RouteTable(missing="get {name}: no such volume")
LIST_FILTERS = matching.VOLUME_FILTERS
PRUNE_FILTERS = ("label", "all")
OP = "create volume"


def create_from_body(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name = require_type(body.get("Name") or "", str, "Name") or None
    if (require_type(body.get("Driver") or "local", str, "Driver")) != "local":
        raise InvalidArgumentError(f"volume driver {body.get('Driver')!r} is not supported: only local", op=OP)
    if body.get("ClusterVolumeSpec"):
        raise InvalidArgumentError("cluster volumes are not supported", op=OP)
    labels = require_type(body.get("Labels") or {}, dict, "Labels")
    driver_options = require_type(body.get("DriverOpts") or {}, dict, "DriverOpts")
    for what, mapping in (("Labels", labels), ("DriverOpts", driver_options)):
        for key, value in mapping.items():
            require_type(value, str, f"{what}[{key!r}]")
    options = tuple(f"{key}={value}" for key, value in driver_options.items())
    record = volumes.create(ctx, name, options, labels=labels)
    return inspect.volume(ctx, record.name)


@routes.post("/volumes/create", "create volume")
async def create(app: App, request: Request) -> Reply:
    return json_reply(await app.workers.call(create_from_body, await request.json()), 201)


def list_documents(ctx: Context, chosen: filters.Filters) -> dict[str, Any]:
    return {"Volumes": [inspect.volume_document(v) for v in matching.volumes(ctx, chosen)], "Warnings": []}


@routes.get("/volumes", "list volumes")
async def list_volumes(app: App, request: Request) -> Reply:
    chosen = filters.decode(request.arg("filters"), LIST_FILTERS)
    return json_reply(await app.workers.call(list_documents, chosen))


def _prune(ctx: Context, chosen: filters.Filters) -> dict[str, Any]:
    """Unused volumes: anonymous ones, or named ones too with all=true (Docker's rule since API 1.42)."""
    from isobox.service.system import du

    everything = filters.bool_filter(chosen, "all") is True
    store = volumes.store(ctx)
    deleted, reclaimed = [], 0
    for volume in volumes.list_volumes(ctx):
        if store.users(volume.name) or not (volume.anonymous or everything):
            continue
        if not filters.label_matches(dict(volume.labels), chosen.get("label", [])):
            continue
        reclaimed += du(Path(volume.path))
        volumes.remove(ctx, volume.name)
        deleted.append(volume.name)
    return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


@routes.post("/volumes/prune", "prune volumes")
async def prune(app: App, request: Request) -> Reply:
    chosen = filters.decode(request.arg("filters"), PRUNE_FILTERS)
    return json_reply(await app.workers.call(_prune, chosen))


@routes.get("/volumes/{name}", "inspect volume")
async def inspect_volume(app: App, request: Request) -> Reply:
    return json_reply(await app.workers.call(inspect.volume, request.params["name"]))


@routes.delete("/volumes/{name}", "remove volume")
async def remove(app: App, request: Request) -> Reply:
    await app.workers.call(volumes.remove, request.params["name"], force=request.flag("force"))
    return empty()


@routes.put("/volumes/{name}", "update volume")
async def update(app: App, request: Request) -> Reply:
    raise errors.not_implemented("volume update", "it applies to cluster volumes only")
