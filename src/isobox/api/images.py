"""Images: list, pull (POST /images/create), push, tag, remove, inspect, history, prune, get and load.

Pull and push answer with Docker's JSON progress stream. The headers wait for the first progress line,
so a pull that fails at once (no such image, access denied) is an HTTP status as with dockerd, and one
that fails later is an error line inside the stream.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import queue
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from isobox.api import errors, filters, streams
from isobox.api.app import App
from isobox.api.messages import Reply, Request, Streamed, empty, json_reply
from isobox.api.routing import RouteTable
from isobox.errors import InvalidArgumentError
from isobox.images import reference
from isobox.images.auth import Credentials
from isobox.images.pull import PullEvent, Stage
from isobox.images.push import PushedBlob
from isobox.service import filters as matching
from isobox.service import images, inspect, registry_access
from isobox.service.context import Context

routes = RouteTable(missing="No such image: {name}")
LIST_FILTERS = matching.IMAGE_FILTERS
PRUNE_FILTERS = ("dangling", "label", "until")
PROGRESS_EVERY_S = 0.1  # at most this often per layer: a fast local pull would otherwise send thousands of lines
LOAD_MAX_BYTES = 64 * 1024**3


def registry_credentials(header: str | None) -> Credentials | None:
    """X-Registry-Auth: base64url of a JSON AuthConfig ({"username", "password", …}); padding optional."""
    if not header:
        return None
    try:
        document = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgumentError(f"X-Registry-Auth is not base64url-encoded JSON: {exc}", op="registry auth") from exc
    if not isinstance(document, dict):
        raise InvalidArgumentError("X-Registry-Auth must encode a JSON object", op="registry auth")
    username, password = document.get("username") or "", document.get("password") or ""
    if not username and isinstance(document.get("auth"), str):
        username, _, password = base64.b64decode(document["auth"]).decode().partition(":")
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidArgumentError("X-Registry-Auth username and password must be strings", op="registry auth")
    return Credentials(username, password) if username else None


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _bar(current: int, total: int) -> str:
    width = 50
    filled = width * current // total if total else 0
    return f"[{'=' * max(filled - 1, 0)}{'>' if filled else ''}{' ' * (width - filled)}] {current}B/{total}B"


class PullProgress:
    """PullEvents (from the puller's threads) as Docker's progress lines."""

    def __init__(self) -> None:
        self.announced: set[str] = set()
        self.last_sent: dict[str, float] = {}
        self.downloaded = False

    def lines(self, event: PullEvent) -> list[dict[str, Any]]:
        if not event.digest:
            return []
        short = _short(event.digest)
        found: list[dict[str, Any]] = []
        if event.digest not in self.announced:
            self.announced.add(event.digest)
            found.append({"status": "Pulling fs layer", "progressDetail": {}, "id": short})
        if event.stage is Stage.DOWNLOADING:
            self.downloaded = True
            now = time.monotonic()
            if now - self.last_sent.get(event.digest, 0.0) >= PROGRESS_EVERY_S or event.current == event.total:
                self.last_sent[event.digest] = now
                found.append({"status": "Downloading", "id": short, "progress": _bar(event.current, event.total),
                              "progressDetail": {"current": event.current, "total": event.total}})
        elif event.stage is Stage.DOWNLOADED:
            found.append({"status": "Download complete", "progressDetail": {}, "id": short})
        elif event.stage is Stage.UNPACKED:
            found.append({"status": "Pull complete", "progressDetail": {}, "id": short})
        return found


def _threaded(run: Callable[[Callable[[object], None]], object], gone: threading.Event) -> Iterator[object]:
    """Run ``run(report)`` in a thread and yield what it reports, then its result (or raise its error)."""
    reports: queue.Queue[tuple[str, object]] = queue.Queue()

    def body() -> None:
        try:
            reports.put(("done", run(lambda item: reports.put(("item", item)))))
        except BaseException as exc:
            reports.put(("error", exc))

    threading.Thread(target=body, name="isobox-api-registry", daemon=True).start()
    while not gone.is_set():
        kind, value = reports.get()
        if kind == "item":
            yield value
        elif kind == "error":
            assert isinstance(value, BaseException)
            raise value
        else:
            yield _Result(value)
            return


class _Result:
    def __init__(self, value: object) -> None:
        self.value = value


async def _first_then_rest(lines: AsyncIterator[dict[str, Any]], operation: str) -> Streamed:
    """Wait for the first line before answering: an immediate failure becomes an HTTP status."""
    first = await anext(lines)

    async def chained() -> AsyncIterator[dict[str, Any]]:
        yield first
        async for item in lines:
            yield item

    return Streamed(streams.progress(chained(), operation))


@routes.post("/images/create", "pull image")
async def create(app: App, request: Request) -> Streamed:
    if request.arg("fromSrc"):
        raise errors.not_implemented("image import (fromSrc)")
    source = request.arg("fromImage") or ""
    tag = request.arg("tag") or ""
    if not source:
        raise InvalidArgumentError("fromImage is required", op="pull image")
    name = source if not tag else f"{source}@{tag}" if reference.is_digest(tag) else f"{source}:{tag}"
    ref = reference.parse(name)  # a bad reference is a 400 before anything streams
    credentials = registry_credentials(request.headers.get("x-registry-auth"))
    platform = request.arg("platform") or None
    shown = inspect.familiar(str(ref))

    def produce(ctx: Context) -> Iterator[dict[str, Any]]:
        yield {"status": f"Pulling from {inspect.familiar(ref.name + ':x').rsplit(':', 1)[0]}", "id": ref.target}
        progress = PullProgress()
        for item in _threaded(lambda report: registry_access.pull(
                ctx, name, credentials=credentials, platform=platform,
                insecure_registries=app.insecure_registries, progress=report), request.gone):
            if isinstance(item, _Result):
                record = item.value
                yield {"status": f"Digest: {getattr(record, 'manifest_digest', '')}"}
                state = "Downloaded newer image" if progress.downloaded else "Image is up to date"
                yield {"status": f"Status: {state} for {shown}"}
                return
            if isinstance(item, PullEvent):
                yield from progress.lines(item)

    return await _first_then_rest(app.workers.iterate(produce, request.gone), "pull image")


@routes.post("/images/{name:.*}/push", "push image")
async def push(app: App, request: Request) -> Streamed:
    base = request.params["name"]
    tag = request.arg("tag") or ""
    name = f"{base}:{tag}" if tag else base
    ref = reference.parse(name)
    credentials = registry_credentials(request.headers.get("x-registry-auth"))
    await app.workers.call(lambda ctx: ctx.images.resolve(name))  # a 404 before anything streams

    def produce(ctx: Context) -> Iterator[dict[str, Any]]:
        yield {"status": f"The push refers to repository [{inspect.familiar(ref.name + ':x').rsplit(':', 1)[0]}]"}
        for item in _threaded(lambda report: registry_access.push(
                ctx, name, credentials=credentials, insecure_registries=app.insecure_registries,
                progress=report), request.gone):
            if isinstance(item, _Result):
                digest = str(item.value)
                yield {"status": f"{ref.tag or 'latest'}: digest: {digest}",
                       "aux": {"Tag": ref.tag or "latest", "Digest": digest}}
                return
            if isinstance(item, PushedBlob):
                status = {"exists": "Layer already exists", "mounted": "Mounted from another repository"}.get(
                    item.how, "Pushed")
                yield {"status": status, "progressDetail": {}, "id": _short(item.digest)}

    return await _first_then_rest(app.workers.iterate(produce, request.gone), "push image")


# ---- the store ----------------------------------------------------------------------------------


def _labels(ctx: Context, record: Any) -> dict[str, str]:
    return matching.image_labels(ctx, record)


def list_documents(ctx: Context, chosen: filters.Filters) -> list[dict[str, Any]]:
    return [inspect.image_summary(m.record, m.names, m.labels or _labels(ctx, m.record))
            for m in matching.images(ctx, chosen)]


@routes.get("/images/json", "list images")
async def list_images(app: App, request: Request) -> Reply:
    chosen = filters.decode(request.arg("filters"), LIST_FILTERS)
    return json_reply(await app.workers.call(list_documents, chosen))


def _untag_or_delete(ctx: Context, name: str, force: bool) -> list[dict[str, str]]:
    done = images.remove(ctx, name, force=force)
    result = []
    for line in done:
        verb, _, what = line.partition(" ")
        result.append({"Untagged": inspect.familiar(what)} if verb == "untagged" else {"Deleted": what})
    return result


@routes.delete("/images/{name:.*}", "remove image")
async def remove(app: App, request: Request) -> Reply:
    return json_reply(await app.workers.call(_untag_or_delete, request.params["name"], request.flag("force")))


@routes.post("/images/{name:.*}/tag", "tag image")
async def tag(app: App, request: Request) -> Reply:
    repo = request.arg("repo") or ""
    if not repo:
        raise InvalidArgumentError("tag needs a repository (?repo=)", op="tag image")
    target = f"{repo}:{request.arg('tag') or 'latest'}"
    reference.parse(target)
    await app.workers.call(images.tag, request.params["name"], target)
    return empty(201)


@routes.get("/images/{name:.*}/json", "inspect image")
async def inspect_image(app: App, request: Request) -> Reply:
    return json_reply(await app.workers.call(inspect.image, request.params["name"]))


def _history(ctx: Context, name: str) -> list[dict[str, Any]]:
    details = images.inspect(ctx, name)
    entries = images.history(ctx, name)
    tags, _ = inspect.repo_tags_and_digests(details.names, details.record.manifest_digest)
    return [{"Id": details.record.id if index == 0 else "<missing>", "Created": inspect.created_unix(step.created),
             "CreatedBy": step.created_by, "Tags": tags if index == 0 else None, "Size": step.size,
             "Comment": step.comment} for index, step in enumerate(entries)]


@routes.get("/images/{name:.*}/history", "image history")
async def history(app: App, request: Request) -> Reply:
    return json_reply(await app.workers.call(_history, request.params["name"]))


def _prune(ctx: Context, chosen: filters.Filters) -> dict[str, Any]:
    """Images no workload uses: untagged ones (dangling=true, the default) or all of them (dangling=false)."""
    dangling_only = filters.bool_filter(chosen, "dangling") is not False
    used = ctx.records.workloads.image_ids()
    deleted: list[dict[str, str]] = []
    reclaimed = 0
    for record, names in ctx.images.list():
        if record.id in used or (names and dangling_only):
            continue
        if not filters.label_matches(_labels(ctx, record), chosen.get("label", [])):
            continue
        deleted += _untag_or_delete(ctx, record.id, True)
        reclaimed += record.size
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


@routes.post("/images/prune", "prune images")
async def prune(app: App, request: Request) -> Reply:
    chosen = filters.decode(request.arg("filters"), PRUNE_FILTERS)
    return json_reply(await app.workers.call(_prune, chosen))


@routes.get("/images/search", "search images")
async def search(app: App, request: Request) -> Reply:
    raise errors.not_implemented("image search", "isobox has no registry index to search")


# ---- archives -----------------------------------------------------------------------------------


async def _tar_of(app: App, request: Request, names: list[str]) -> Streamed:
    if not names:
        raise InvalidArgumentError("name at least one image (?names=)", op="save images")
    handle, path = tempfile.mkstemp(prefix="api-save-", suffix=".tar",
                                    dir=await app.workers.call(lambda ctx: str(ctx.paths.tmp)))
    os.close(handle)
    try:
        await app.workers.call_long(images.save, names, path)
    except BaseException:
        os.unlink(path)
        raise

    async def chunks() -> AsyncIterator[bytes]:
        try:
            with open(path, "rb") as tar:
                while block := tar.read(256 * 1024):
                    yield block
        finally:
            os.unlink(path)

    return Streamed(chunks(), content_type="application/x-tar")


@routes.get("/images/get", "save images")
async def get_many(app: App, request: Request) -> Streamed:
    return await _tar_of(app, request, [n for value in request.args("names") for n in value.split(",") if n])


@routes.get("/images/{name:.*}/get", "save image")
async def get_one(app: App, request: Request) -> Streamed:
    return await _tar_of(app, request, [request.params["name"]])


@routes.post("/images/load", "load images")
async def load(app: App, request: Request) -> Reply:
    """The body is a tar (docker save or OCI layout), written to the state's tmp directory, then loaded."""
    tmp_dir = await app.workers.call(lambda ctx: str(ctx.paths.tmp))
    handle, path = tempfile.mkstemp(prefix="api-load-", suffix=".tar", dir=tmp_dir)
    try:
        written = 0
        with os.fdopen(handle, "wb") as out:
            async for chunk in request.body.chunks():
                written += len(chunk)
                if written > LOAD_MAX_BYTES:
                    raise InvalidArgumentError(f"image archive larger than {LOAD_MAX_BYTES} bytes", op="load images")
                out.write(chunk)
        if not written:
            raise InvalidArgumentError("the request body holds no image archive", op="load images")
        loaded = await app.workers.call_long(_load, path)
    finally:
        Path(path).unlink(missing_ok=True)
    lines = b"".join(streams.line({"stream": f"{text}\n"}) for text in loaded)
    return Reply(200, lines)


def _load(ctx: Context, path: str) -> list[str]:
    """Docker's lines: "Loaded image: NAME" per tag, "Loaded image ID: ID" for an image without one."""
    lines: list[str] = []
    for record in images.load(ctx, path):
        tagged = [f"Loaded image: {inspect.familiar(n)}" for n in ctx.images.names(record.id)]
        lines += tagged or [f"Loaded image ID: {record.id}"]
    return lines
