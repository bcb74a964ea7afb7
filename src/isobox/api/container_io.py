"""What comes out of a container: logs, stats, top, and wait's exit code.

Logs of a container without a terminal are Docker's multiplexed stream (stdout and stderr framed apart);
with a terminal, the raw bytes, as dockerd sends them. Wait sends its headers at once and its body when
the condition is met, so a client can wait before it starts the container (the docker CLI does).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from isobox.api import streams
from isobox.api.app import App
from isobox.api.messages import Reply, Request, Streamed, json_reply
from isobox.api.routing import RouteTable
from isobox.errors import InvalidArgumentError, IsoboxError
from isobox.model.logs import LogEntry
from isobox.service import control, inspect, waiting, workloads
from isobox.service import logs as log_service
from isobox.service.context import Context

routes = RouteTable(missing="No such container: {id}")
STATS_INTERVAL_S = 1.0  # dockerd's collector samples once a second


# ---- logs -------------------------------------------------------------------------------------


def docker_timestamp(entry: LogEntry) -> str:
    """The log's timestamp (…789+00:00) as Docker prints it (RFC 3339 with nanoseconds, …789Z)."""
    return entry.timestamp.replace("+00:00", "Z")


def _cutoff(text: str | None, what: str) -> dt.datetime | None:
    if not text or text == "0":
        return None
    try:
        return log_service.parse_since(text)
    except IsoboxError:
        raise InvalidArgumentError(f"invalid {what} {text!r}: a Unix time or an RFC 3339 time", op="logs") from None


def log_chunks(entries: Iterator[LogEntry], *, tty: bool, streams_wanted: set[str], timestamps: bool,
               until: dt.datetime | None) -> Iterator[bytes]:
    for entry in entries:
        if entry.stream not in streams_wanted:
            continue
        if until is not None and entry.time > until:
            return
        data = (docker_timestamp(entry).encode() + b" " if timestamps else b"") + entry.content
        data += b"" if entry.partial else b"\n"
        yield data if tty else streams.frame(entry.stream, data)


@routes.get("/containers/{id}/logs", "container logs")
async def logs(app: App, request: Request) -> Streamed:
    wanted = {name for name in ("stdout", "stderr") if request.flag(name)}
    if not wanted:
        raise InvalidArgumentError("Bad parameters: you must choose at least one stream", op="logs")
    since = _cutoff(request.arg("since"), "since")
    until = _cutoff(request.arg("until"), "until")
    tail = request.arg("tail") or "all"
    if tail != "all" and not tail.lstrip("-").isdigit():
        raise InvalidArgumentError(f"invalid tail {tail!r}: a number of lines or all", op="logs")
    if tail.startswith("-"):
        tail = "all"
    record = await app.workers.call(workloads.get, request.params["id"])
    tty = record.plan.process.tty
    follow, timestamps = request.flag("follow"), request.flag("timestamps")

    def produce(ctx: Context) -> Iterator[bytes]:
        entries = log_service.read(ctx, record.id, follow=follow, tail=tail,
                                   since=str(since.timestamp()) if since else None)
        yield from log_chunks(entries, tty=tty, streams_wanted=wanted, timestamps=timestamps, until=until)

    return Streamed(app.workers.iterate(produce, request.gone),
                    content_type=streams.RAW_STREAM if tty else streams.MULTIPLEXED)


# ---- stats, top -------------------------------------------------------------------------------


def _cpu(sample: waiting.Sample | None) -> dict[str, Any]:
    if sample is None:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "system_cpu_usage": 0, "online_cpus": 0,
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    return {"cpu_usage": {"total_usage": sample.stats.cpu_usage_ns, "usage_in_kernelmode": 0,
                          "usage_in_usermode": 0},
            "system_cpu_usage": sample.system_cpu_ns, "online_cpus": sample.online_cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def _blkio(io_bytes: tuple[tuple[str, str, int], ...]) -> list[dict[str, Any]] | None:
    """Docker's blkio entries ({major, minor, op, value}); null where the cgroup measures no I/O."""
    entries = []
    for device, op, value in io_bytes:
        major, _, minor = device.partition(":")
        if major.isdigit() and minor.isdigit():
            entries.append({"major": int(major), "minor": int(minor), "op": op, "value": value})
    return entries or None


def stats_document(now: waiting.Sample, before: waiting.Sample | None) -> dict[str, Any]:
    """Docker's stats document; ``before`` is the previous sample (precpu_stats), None for a one-shot."""
    limit = now.stats.memory_limit_bytes
    return {
        "id": now.record.id, "name": f"/{now.record.name}",
        "read": inspect.rfc3339(now.taken_at), "preread": inspect.rfc3339(before.taken_at if before else None),
        "pids_stats": {"current": now.stats.pids}, "num_procs": 0, "storage_stats": {},
        "blkio_stats": {"io_service_bytes_recursive": _blkio(now.stats.io_bytes), "io_serviced_recursive": None},
        "cpu_stats": _cpu(now), "precpu_stats": _cpu(before),
        "memory_stats": {"usage": now.stats.memory_bytes, "stats": {},
                         "limit": min(limit, now.host_memory_bytes) if limit else now.host_memory_bytes},
        **({"networks": now.networks} if now.networks else {}),
    }


@routes.get("/containers/{id}/stats", "container stats")
async def stats(app: App, request: Request) -> Reply | Streamed:
    name = request.params["id"]
    first = await app.workers.call(waiting.sample, name)
    if request.flag("one-shot"):
        return json_reply(stats_document(first, None))

    def produce(ctx: Context) -> Iterator[bytes]:
        before = first
        while True:
            time.sleep(STATS_INTERVAL_S)
            now = waiting.sample(ctx, name)
            yield json.dumps(stats_document(now, before)).encode() + b"\n"
            before = now

    samples = app.workers.iterate(produce, request.gone)
    if request.flag("stream", default=True):
        return Streamed(samples)
    # stream=false: one document with a previous sample a second before, as dockerd (CPU % needs two).
    one = await anext(samples)
    request.gone.set()
    return Reply(200, one)


@routes.get("/containers/{id}/top", "container top")
async def top(app: App, request: Request) -> Reply:
    table = await app.workers.call(control.top, request.params["id"])
    return json_reply({"Titles": list(table.titles), "Processes": [list(row) for row in table.rows]})


# ---- wait -------------------------------------------------------------------------------------


@routes.post("/containers/{id}/wait", "wait for container")
async def wait(app: App, request: Request) -> Streamed:
    condition = waiting.WaitCondition.parse(request.arg("condition"))
    record = await app.workers.call(workloads.get, request.params["id"])  # a 404 still goes out as a status

    async def body() -> AsyncIterator[bytes]:
        try:
            code = await app.workers.call_long(waiting.wait, record.id, condition, request.gone)
        except IsoboxError as exc:
            yield json.dumps({"StatusCode": -1, "Error": {"Message": str(exc)}}).encode()
            return
        yield json.dumps({"StatusCode": code, "Error": None}).encode()

    return Streamed(body())
