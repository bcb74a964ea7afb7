"""A container's files and limits after create: GET /containers/{id}/changes (docker diff), /export (docker
export), and POST /containers/{id}/update (docker update), over service/changes.py and service/update.py."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from isobox.api.app import App
from isobox.api.messages import Reply, Request, Streamed, json_reply, require_type
from isobox.api.routing import RouteTable
from isobox.errors import InvalidArgumentError
from isobox.service import changes, update
from isobox.service.changes import ChangeKind
from isobox.service.context import Context, open_context

routes = RouteTable(missing="No such container: {id}")
KINDS = {ChangeKind.CHANGED: 0, ChangeKind.ADDED: 1, ChangeKind.DELETED: 2}  # Docker's FilesystemChange.Kind
UPDATABLE = ("Memory", "NanoCpus", "CpuQuota", "CpuPeriod", "PidsLimit", "RestartPolicy")


@routes.get("/containers/{id}/changes", "container changes")
async def changed(app: App, request: Request) -> Reply:
    found = await app.workers.call(changes.diff, request.params["id"])
    return json_reply([{"Path": c.path, "Kind": KINDS[c.kind]} for c in found] or None)


@routes.get("/containers/{id}/export", "export container")
async def export(app: App, request: Request) -> Streamed:
    name = request.params["id"]
    await app.workers.call(changes.diff, name)  # a missing container (or a running VM) is a status, not a stream

    def produce(ctx: Context) -> Iterator[bytes]:
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def write() -> None:
            try:
                with open_context(ctx.paths.root) as own, os.fdopen(write_fd, "wb") as out:
                    changes.export(own, name, out)
            except BaseException as exc:  # raised by the reading side, inside the stream
                failure.append(exc)

        writer = threading.Thread(target=write, name="isobox-api-export", daemon=True)
        writer.start()
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(1 << 16):
                yield chunk
        writer.join()
        if failure:
            raise failure[0]

    return Streamed(app.workers.iterate(produce, request.gone), content_type="application/x-tar")


def _update_arguments(body: dict[str, Any]) -> dict[str, Any]:
    for key, value in body.items():
        if key not in UPDATABLE and value not in (None, 0, "", [], {}):
            raise InvalidArgumentError(f"updating {key} is not supported (only {', '.join(UPDATABLE)})",
                                       op="update container")
    arguments: dict[str, Any] = {}
    if body.get("Memory") is not None:
        arguments["memory"] = require_type(body["Memory"], int, "Memory")
    nano = require_type(body.get("NanoCpus") or 0, int, "NanoCpus")
    quota = require_type(body.get("CpuQuota") or 0, int, "CpuQuota")
    if nano and quota:
        raise InvalidArgumentError("NanoCpus and CpuQuota exclude each other", op="update container")
    if nano or quota:
        period = require_type(body.get("CpuPeriod") or 100_000, int, "CpuPeriod")
        arguments["cpus"] = nano / 1e9 if nano else quota / period
    if body.get("PidsLimit") is not None:
        arguments["pids_limit"] = require_type(body["PidsLimit"], int, "PidsLimit")
    policy = body.get("RestartPolicy")
    if policy:
        require_type(policy, dict, "RestartPolicy")
        name = require_type(policy.get("Name") or "no", str, "RestartPolicy.Name")
        retries = require_type(policy.get("MaximumRetryCount") or 0, int, "RestartPolicy.MaximumRetryCount")
        arguments["restart"] = f"{name}:{retries}" if retries else name
    return arguments


@routes.post("/containers/{id}/update", "update container")
async def updated(app: App, request: Request) -> Reply:
    arguments = _update_arguments(await request.json())
    await app.workers.call(update.update, request.params["id"], **arguments)
    return json_reply({"Warnings": []})
