"""Containers (and VMs, with HostConfig.Isolation = "vm"): create, list, inspect, the lifecycle, rename,
remove, prune. Their output (logs, stats, top, wait) is in container_io.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from isobox.api import errors, filters
from isobox.api.app import App
from isobox.api.container_spec import build_spec
from isobox.api.messages import Reply, Request, empty, json_reply
from isobox.api.routing import Handler, RouteTable
from isobox.errors import InvalidArgumentError, IsoboxError, NotFoundError
from isobox.model.plan import parse_signal
from isobox.model.record import WorkloadRecord
from isobox.model.spec import WorkloadSpec
from isobox.model.status import Status
from isobox.service import control, exits, inspect, registry_access, workloads
from isobox.service import filters as matching
from isobox.service.context import Context

log = logging.getLogger(__name__)
routes = RouteTable(missing="No such container: {id}")

LIST_FILTERS = matching.WORKLOAD_FILTERS
PRUNE_FILTERS = ("label", "until")


# ---- list -------------------------------------------------------------------------------------


def list_documents(ctx: Context, *, all_: bool, limit: int | None, chosen: filters.Filters) -> list[dict[str, Any]]:
    return [inspect.container_summary(r) for r in matching.workloads(ctx, chosen, all_=all_, limit=limit)]


@routes.get("/containers/json", "list containers")
async def list_containers(app: App, request: Request) -> Reply:
    chosen = filters.decode(request.arg("filters"), LIST_FILTERS)
    matching.check_workload_filters(chosen)
    limit = request.int_arg("limit", None)
    documents = await app.workers.call(list_documents, all_=request.flag("all"),
                                       limit=limit if limit and limit > 0 else None, chosen=chosen)
    return json_reply(documents)


# ---- create, inspect --------------------------------------------------------------------------


def _create(ctx: Context, spec: WorkloadSpec) -> WorkloadRecord:
    """Docker answers 404 for an image not in the store, and the docker CLI and docker-py then pull it
    through /images/create (with credentials and insecure-registry rules) and try again. The built-in
    busybox is made on first use, as `isobox run busybox` does."""
    if spec.image not in registry_access.BUILTIN_NAMES:
        try:
            ctx.images.resolve(spec.image)
        except NotFoundError:
            raise NotFoundError(f"No such image: {inspect.familiar(spec.image)}", op="create container",
                                id=spec.image) from None
    return workloads.create(ctx, spec)


@routes.post("/containers/create", "create container")
async def create(app: App, request: Request) -> Reply:
    name = request.arg("name") or None
    platform = request.arg("platform") or ""
    if platform not in ("", "linux", "linux/amd64"):
        raise InvalidArgumentError(f"platform {platform!r} is not available: isobox runs linux/amd64", op="create")
    body = await request.json()
    log.debug("create %s: %s", name or "(unnamed)", body)
    spec = build_spec(body, name.removeprefix("/") if name else None)
    record = await app.workers.call(_create, spec)
    return json_reply({"Id": record.id, "Warnings": []}, 201)


@routes.get("/containers/{id}/json", "inspect container")
async def inspect_container(app: App, request: Request) -> Reply:
    document = await app.workers.call(inspect.container, request.params["id"])
    if request.flag("size"):
        document["SizeRw"], document["SizeRootFs"] = 0, 0
    return json_reply(document)


# ---- lifecycle --------------------------------------------------------------------------------


def _start(ctx: Context, app: App, name: str) -> None:
    record = workloads.get(ctx, name)
    if record.status in (Status.RUNNING, Status.PAUSED):
        raise errors.NotModified()
    from isobox.api import attach  # a client attached before the start: its stream starts the workload

    if attach.start_pending(app, ctx, record):
        return
    try:
        workloads.start(ctx, record.id)
    except IsoboxError:
        if record.plan.remove:  # as dockerd: an AutoRemove container whose start failed is removed
            exits.remove_if_present(ctx, record.id)
        raise


@routes.post("/containers/{id}/start", "start container")
async def start(app: App, request: Request) -> Reply:
    await request.body.read()  # pre-1.24 clients sent a HostConfig here; nothing in it is used since
    await app.workers.call(_start, app, request.params["id"])
    return empty()


def _timeout(request: Request) -> float | None:
    """Seconds before SIGKILL (t, or timeout since 1.42); None: the container's own; -1: no limit."""
    value = request.int_arg("timeout", request.int_arg("t", None))
    if value is None:
        return None
    return float(value) if value >= 0 else float(365 * 86400)


def _stop(ctx: Context, name: str, timeout_s: float | None) -> None:
    record = workloads.get(ctx, name)
    if record.status not in (Status.RUNNING, Status.PAUSED):
        raise errors.NotModified()
    control.stop(ctx, record.id, timeout_s=timeout_s)


@routes.post("/containers/{id}/stop", "stop container")
async def stop(app: App, request: Request) -> Reply:
    if request.arg("signal"):
        raise InvalidArgumentError("stop with another signal is not supported: send it with kill, then stop",
                                   op="stop container")
    await app.workers.call(_stop, request.params["id"], _timeout(request))
    return empty()


@routes.post("/containers/{id}/restart", "restart container")
async def restart(app: App, request: Request) -> Reply:
    await app.workers.call(control.restart, request.params["id"], timeout_s=_timeout(request))
    return empty()


@routes.post("/containers/{id}/kill", "kill container")
async def kill(app: App, request: Request) -> Reply:
    number = parse_signal(request.arg("signal") or "SIGKILL")
    await app.workers.call(control.kill, request.params["id"], number)
    return empty()


@routes.post("/containers/{id}/pause", "pause container")
async def pause(app: App, request: Request) -> Reply:
    await app.workers.call(control.pause, request.params["id"])
    return empty()


@routes.post("/containers/{id}/unpause", "unpause container")
async def unpause(app: App, request: Request) -> Reply:
    await app.workers.call(control.unpause, request.params["id"])
    return empty()


@routes.post("/containers/{id}/rename", "rename container")
async def rename(app: App, request: Request) -> Reply:

    new_name = request.arg("name")
    if not new_name:
        raise InvalidArgumentError("rename needs a new name (?name=)", op="rename container")
    await app.workers.call(control.rename, request.params["id"], new_name)
    return empty()


@routes.delete("/containers/{id}", "remove container")
async def remove(app: App, request: Request) -> Reply:
    if request.flag("link"):
        raise InvalidArgumentError("links are not supported", op="remove container")
    await app.workers.call(workloads.remove, request.params["id"], force=request.flag("force"),
                           volumes=request.flag("v"))
    return empty()


def prune_documents(ctx: Context, chosen: filters.Filters) -> dict[str, Any]:
    """Remove the stopped workloads (created or exited) that match; Docker's prune answer."""
    from isobox.service.system import du

    until = [_time(u) for u in chosen.get("until", [])]
    deleted, reclaimed = [], 0
    for record in workloads.list_workloads(ctx, all=True):
        if record.status not in (Status.EXITED, Status.CREATED):
            continue
        if not filters.label_matches(dict(record.plan.labels), chosen.get("label", [])):
            continue
        if any(record.created_at >= limit for limit in until):
            continue
        reclaimed += du(Path(record.plan.workload_dir))
        workloads.remove(ctx, record.id, force=True)
        deleted.append(record.id)
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


def _time(text: str) -> float:
    """A Unix time, a duration before now (10m) or an RFC 3339 time, as prune's until filter takes."""
    from isobox.service.logs import parse_since

    return parse_since(text).timestamp()


@routes.post("/containers/prune", "prune containers")
async def prune(app: App, request: Request) -> Reply:
    chosen = filters.decode(request.arg("filters"), PRUNE_FILTERS)
    return json_reply(await app.workers.call(prune_documents, chosen))


# ---- not yet ----------------------------------------------------------------------------------

LATER = (("GET", "/containers/{id}/attach/ws", "attach over a websocket"),)


def _not_yet(what: str) -> Handler:
    async def handler(app: App, request: Request) -> Reply:
        raise errors.not_implemented(f"container {what}")

    return handler


for _method, _path, _what in LATER:
    routes.add(_method, _path, f"container {_what}")(_not_yet(_what))
