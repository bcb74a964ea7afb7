"""POST /build (the classic builder's API: a tar context in, a JSON stream out) and POST /build/prune.

The body is the build context as a tar (plain or compressed; a lone Dockerfile is accepted too), written
to the state's tmp directory and handed to service/build.py. The answer is the classic builder's stream,
as the docker CLI (DOCKER_BUILDKIT=0) and docker-py's ``images.build`` read it::

    {"stream": "Step 1/3 : FROM busybox\\n"}
    {"stream": " ---> Using cache\\n"}      {"stream": " ---> Running in 4f2c…\\n"}     {"stream": "hello\\n"}
    {"aux": {"ID": "sha256:…"}}
    {"stream": "Successfully built 0123456789ab\\n"}
    {"stream": "Successfully tagged app:1\\n"}

A failure after the 200 went out ends the stream with ``{"error": …, "errorDetail": {…}}`` (a failed
RUN's ``code`` is its exit code). A client that goes away interrupts the build: its steps are removed
and nothing is tagged. ``remote`` (a Git or tarball URL as the context) answers 501.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from isobox.api import errors, streams
from isobox.api.app import App
from isobox.api.messages import Reply, Request, Streamed, json_reply
from isobox.api.routing import RouteTable
from isobox.builder.events import BuildEvent, EventKind
from isobox.builder.options import BuildNetwork, BuildOptions
from isobox.builder.outcome import BuildResult, BuildStepError
from isobox.errors import InvalidArgumentError
from isobox.service import build as service
from isobox.service import inspect
from isobox.service.context import Context

log = logging.getLogger(__name__)
routes = RouteTable(missing="No such build: {name}")
CONTEXT_MAX_BYTES = 64 * 1024**3
POLL_S = 0.5  # how often a quiet build looks whether its client is still there
_NETWORKS = {"": BuildNetwork.DEFAULT, "default": BuildNetwork.DEFAULT, "bridge": BuildNetwork.DEFAULT,
             "none": BuildNetwork.NONE}


def _json_map(request: Request, name: str) -> tuple[tuple[str, str], ...]:
    text = request.arg(name)
    if not text:
        return ()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"{name} is not JSON: {exc}", op="build") from exc
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{name} must be a JSON object", op="build")
    return tuple((str(key), str(item)) for key, item in value.items() if item is not None)


def options_from(request: Request, context_tar: Path) -> BuildOptions:
    """The query of a /build request as BuildOptions (what isobox does not do is refused, not ignored)."""
    if request.arg("remote"):
        raise errors.not_implemented("a remote build context (remote=)", "send the context as the request body")
    if request.arg("version") == "2":
        raise errors.not_implemented("BuildKit builds (version=2)", "isobox serves the classic builder's API: "
                                     "set DOCKER_BUILDKIT=0")
    network = request.arg("networkmode") or ""
    if network not in _NETWORKS:
        raise InvalidArgumentError(f"networkmode {network!r} is not supported by isobox build (default or none)",
                                   op="build")
    return BuildOptions(
        context_tar=context_tar, dockerfile=request.arg("dockerfile") or None,
        tags=tuple(tag for tag in request.args("t") if tag), build_args=_json_map(request, "buildargs"),
        target=request.arg("target") or None, no_cache=request.flag("nocache"), pull=request.flag("pull"),
        labels=_json_map(request, "labels"), platform=request.arg("platform") or None, network=_NETWORKS[network],
        quiet=request.flag("q"),
    )


class ClassicStream:
    """BuildEvents as the classic builder's stream lines."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def lines(self, event: BuildEvent) -> list[dict[str, Any]]:
        if self.quiet:
            return []
        if event.kind is EventKind.STEP:
            return [{"stream": f"Step {event.number}/{event.total} : {event.text}\n"}]
        if event.kind is EventKind.CACHED:
            return [{"stream": " ---> Using cache\n"}]
        if event.kind is EventKind.RUNNING:
            return [{"stream": f" ---> Running in {event.workload[:12]}\n"}]
        if event.kind is EventKind.OUTPUT:
            return [{"stream": event.text + "\n"}]
        if event.kind is EventKind.DONE and event.layer:
            return [{"stream": f" ---> {event.layer}\n"}]
        if event.kind is EventKind.WARNING:
            return [{"stream": f"[Warning] {event.text}\n"}]
        return []

    def result(self, result: BuildResult) -> list[dict[str, Any]]:
        if self.quiet:
            return [{"stream": result.image_id + "\n"}]
        lines: list[dict[str, Any]] = [{"aux": {"ID": result.image_id}},
                                       {"stream": f"Successfully built {result.short_id}\n"}]
        return lines + [{"stream": f"Successfully tagged {inspect.familiar(tag)}\n"} for tag in result.tags]


def _error_line(exc: BaseException) -> dict[str, Any]:
    message = errors.message_for(exc, "build")
    detail: dict[str, Any] = {"message": message}
    if isinstance(exc, BuildStepError):
        detail["code"] = exc.exit_code
    return {"error": message, "errorDetail": detail}


def _produce(options: BuildOptions, gone: threading.Event) -> Any:
    """The stream's lines, made while the build runs in a thread of its own (its events through a queue)."""

    def produce(ctx: Context) -> Iterator[dict[str, Any]]:
        events: queue.Queue[tuple[str, object]] = queue.Queue()
        cancel = threading.Event()
        stream = ClassicStream(options.quiet)

        def body() -> None:
            try:
                events.put(("done", service.build(ctx, options, progress=lambda e: events.put(("event", e)),
                                                  cancel=cancel)))
            except BaseException as exc:  # handed to the stream
                events.put(("error", exc))

        worker = threading.Thread(target=body, name="isobox-api-build")
        worker.start()
        try:
            while True:
                try:
                    kind, value = events.get(timeout=POLL_S)
                except queue.Empty:
                    if gone.is_set():
                        cancel.set()
                    continue
                if kind == "event":
                    assert isinstance(value, BuildEvent)
                    yield from stream.lines(value)
                elif kind == "done":
                    assert isinstance(value, BuildResult)
                    yield from stream.result(value)
                    return
                else:
                    assert isinstance(value, BaseException)
                    yield _error_line(value)
                    return
        finally:
            if worker.is_alive():
                cancel.set()
            worker.join()
            if options.context_tar is not None:
                options.context_tar.unlink(missing_ok=True)

    return produce


async def _receive(app: App, request: Request) -> Path:
    """The body, written to a file in the state's tmp directory."""
    tmp_dir = await app.workers.call(lambda ctx: str(ctx.paths.tmp))
    handle, name = tempfile.mkstemp(prefix="api-build-", suffix=".tar", dir=tmp_dir)
    try:
        written = 0
        with os.fdopen(handle, "wb") as out:
            async for chunk in request.body.chunks():
                written += len(chunk)
                if written > CONTEXT_MAX_BYTES:
                    raise InvalidArgumentError(f"build context larger than {CONTEXT_MAX_BYTES} bytes", op="build")
                out.write(chunk)
        if not written:
            raise InvalidArgumentError("the request body holds no build context", op="build")
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


@routes.post("/build", "build")
async def build(app: App, request: Request) -> Streamed:
    context = await _receive(app, request)
    try:
        options = options_from(request, context)
        lines = app.workers.iterate(_produce(options, request.gone), request.gone)
    except BaseException:
        context.unlink(missing_ok=True)
        raise

    async def encoded() -> AsyncIterator[bytes]:
        async for document in lines:
            yield streams.line(document)

    return Streamed(encoded())


def _prune(ctx: Context) -> dict[str, Any]:
    report = service.prune(ctx)
    return {"CachesDeleted": None, "SpaceReclaimed": report.size_bytes if report is not None else 0}


@routes.post("/build/prune", "prune build cache")
async def prune(app: App, request: Request) -> Reply:
    return json_reply(await app.workers.call_long(_prune))
