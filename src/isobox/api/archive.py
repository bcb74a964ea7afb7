"""`docker cp`: GET, HEAD and PUT /containers/{id}/archive (service/archive.py), for containers and VMs.

The path's stat travels in the X-Docker-Container-Path-Stat header (base64 of a JSON object with name,
size, mode as Go's os.FileMode, mtime and linkTarget), which the docker CLI reads to decide how to copy.
A GET streams the tar as the workload's driver writes it; a PUT's tar is spooled to the state's tmp
directory first (it may be any size), then unpacked.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from isobox.api.app import App
from isobox.api.messages import Reply, Request, Streamed, empty
from isobox.api.routing import RouteTable
from isobox.errors import InvalidArgumentError
from isobox.model.archive import PathStat, go_file_mode
from isobox.service import archive, inspect
from isobox.service.context import Context

routes = RouteTable(missing="No such container: {id}")
STAT_HEADER = "X-Docker-Container-Path-Stat"
TAR = "application/x-tar"
PUT_MAX_BYTES = 64 * 1024**3
CHUNK_BYTES = 1 << 16


def stat_header(info: PathStat) -> tuple[str, str]:
    document = {"name": info.name, "size": info.size_bytes, "mode": go_file_mode(info.mode),
                "mtime": inspect.rfc3339(info.mtime), "linkTarget": info.link_target}
    return STAT_HEADER, base64.b64encode(json.dumps(document).encode()).decode()


def _path(request: Request) -> str:
    path = request.arg("path")
    if not path:
        raise InvalidArgumentError("the path query parameter is required", op="archive")
    return path


@routes.head("/containers/{id}/archive", "stat container path")
async def head(app: App, request: Request) -> Reply:
    info = await app.workers.call(archive.stat_path, request.params["id"], _path(request))
    return Reply(200, b"", "", (stat_header(info),))


@routes.get("/containers/{id}/archive", "copy from container")
async def get(app: App, request: Request) -> Streamed:
    name, path = request.params["id"], _path(request)
    info = await app.workers.call(archive.stat_path, name, path)

    def produce(ctx: Context) -> Iterator[bytes]:
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def write() -> None:
            try:
                with open_context_like(ctx) as own, os.fdopen(write_fd, "wb") as out:
                    archive.copy_from(own, name, path, out)
            except BaseException as exc:  # raised by the reading side, inside the stream
                failure.append(exc)

        writer = threading.Thread(target=write, name="isobox-api-archive", daemon=True)
        writer.start()
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(CHUNK_BYTES):
                yield chunk
        writer.join()
        if failure:
            raise failure[0]

    return Streamed(app.workers.iterate(produce, request.gone), content_type=TAR, headers=(stat_header(info),))


def open_context_like(ctx: Context) -> Context:
    from isobox.service.context import open_context

    return open_context(ctx.paths.root)


@routes.put("/containers/{id}/archive", "copy to container")
async def put(app: App, request: Request) -> Reply:
    directory = _path(request)
    tmp_dir = await app.workers.call(lambda ctx: str(ctx.paths.tmp))
    handle, spooled = tempfile.mkstemp(prefix="api-cp-", suffix=".tar", dir=tmp_dir)
    try:
        written = 0
        with os.fdopen(handle, "wb") as out:
            async for chunk in request.body.chunks():
                written += len(chunk)
                if written > PUT_MAX_BYTES:
                    raise InvalidArgumentError(f"archive larger than {PUT_MAX_BYTES} bytes", op="copy to container")
                out.write(chunk)
        await app.workers.call_long(_unpack, request.params["id"], directory, spooled)
    finally:
        Path(spooled).unlink(missing_ok=True)
    return empty(200)


def _unpack(ctx: Context, name: str, directory: str, spooled: str) -> None:
    with open(spooled, "rb") as tar:
        archive.copy_to(ctx, name, directory, tar)
