"""POST /containers/{id}/attach (a hijacked stream) and /containers/{id}/resize.

The docker CLI's `run` (and `start -a`) attaches to a container that is only created, then starts it: no
output may be lost between the two. So an attach to a container that does not run yet waits for the
start, and it is the attach's own thread that starts the workload with its streams (workloads.start with
an Attach: the output is connected before the process runs); POST /start then only tells it to go. A
container that runs already is joined as `isobox attach` joins it, from now on (``logs=1`` first sends
what it printed so far).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

from isobox.api import hijack, streams
from isobox.api.app import App, PendingAttach
from isobox.api.messages import Hijack, Raw, Reply, Request, empty
from isobox.api.routing import RouteTable
from isobox.errors import InvalidArgumentError, IsoboxError
from isobox.model.record import WorkloadRecord
from isobox.model.status import Status
from isobox.model.streams import Attach
from isobox.service import control, exits, workloads
from isobox.service import logs as log_service
from isobox.service.context import Context

routes = RouteTable(missing="No such container: {id}")
START_SETTLE_S = 1.0  # a start that fails does so while the runtime creates the container, well within this
WAIT_POLL_S = 0.2
ORPHAN_WAIT_S = 30.0


def start_pending(app: App, ctx: Context, record: WorkloadRecord) -> bool:
    """Called by POST /start: hand the start to a waiting attach; True if there was one. Returns once the
    workload runs (or ended), raising the start's failure as the start's own."""
    pending = app.attaches.get(record.id)
    if pending is None or pending.go.is_set():
        return False
    pending.go.set()
    deadline = None
    while not pending.done.wait(WAIT_POLL_S / 4):
        current = ctx.records.workloads.find(record.id)
        if current is None:
            break
        if current.started_at != record.started_at:
            deadline = deadline or time.monotonic() + START_SETTLE_S
            if time.monotonic() >= deadline:
                break
    if pending.error is not None:
        raise pending.error
    return True


def _attached(ctx: Context, record_id: str, streams_: Attach, pending: PendingAttach, gone: threading.Event
              ) -> int | None:
    """The blocking side of an attach: wait for the start if the container does not run, then stream."""
    record = workloads.get(ctx, record_id)
    if record.status in (Status.CREATED, Status.EXITED):
        give_up = None
        while not pending.go.wait(WAIT_POLL_S):
            # The client's end of input may come before the start (`docker run -i` with empty input): only
            # a start that does not follow within a while means it went away.
            if gone.is_set():
                give_up = give_up or time.monotonic() + ORPHAN_WAIT_S
                if time.monotonic() > give_up:
                    return None
            record = workloads.get(ctx, record_id)
            if record.status in (Status.RUNNING, Status.PAUSED):
                break  # started by someone else (`isobox start`): join it
        if pending.go.is_set():
            return _start_attached(ctx, record, streams_, pending)
    return control.attach(ctx, record_id, streams_)


def _start_attached(ctx: Context, record: WorkloadRecord, streams_: Attach, pending: PendingAttach) -> int | None:
    try:
        result = workloads.start(ctx, record.id, attach=streams_)
    except BaseException as exc:
        pending.error = exc
        if record.plan.remove:  # as dockerd: an AutoRemove container whose start failed is removed
            exits.remove_if_present(ctx, record.id)
        raise
    finally:
        pending.done.set()
    if record.plan.remove:  # no conmon exit command when attached: --rm is this side's to do
        exits.remove_if_present(ctx, record.id)
    return result.exit_code


def _replay(ctx: Context, record_id: str, streams_: Attach) -> None:
    for entry in log_service.read(ctx, record_id):
        data = entry.content + (b"" if entry.partial else b"\n")
        os.write(streams_.stderr if entry.stream == "stderr" else streams_.stdout, data)  # a socket: all of it


@routes.post("/containers/{id}/attach", "attach to container")
async def attach(app: App, request: Request) -> Hijack:
    if not request.flag("stream") and not request.flag("logs"):
        raise InvalidArgumentError("attach needs stream=1 or logs=1", op="attach")
    record = await app.workers.call(workloads.get, request.params["id"])
    if record.status in (Status.CREATING, Status.REMOVING):
        raise InvalidArgumentError(f"container {record.name} is {record.status.value}", op="attach")
    tty = record.plan.process.tty
    wants_stdin = request.flag("stdin") and record.plan.process.interactive
    stream, logs = request.flag("stream"), request.flag("logs")
    pending = PendingAttach()
    if stream and record.status in (Status.CREATED, Status.EXITED) and record.id not in app.attaches:
        app.attaches[record.id] = pending

    async def run(raw: Raw) -> None:
        channels = hijack.open_channels(stdin=wants_stdin, tty=tty)
        gone = threading.Event()

        def blocking(ctx: Context) -> int | None:
            try:
                if logs:
                    _replay(ctx, record.id, channels.attach())
                return _attached(ctx, record.id, channels.attach(), pending, gone) if stream else None
            finally:
                channels.close_worker_ends()

        try:
            await hijack.relay(raw, channels, app.workers.call_long(blocking), client_eof=gone)
        except IsoboxError as exc:
            message = f"Error: {exc}\n".encode()
            await _write_quietly(raw, message if tty else streams.frame("stderr", message))
        finally:
            gone.set()
            if app.attaches.get(record.id) is pending:
                del app.attaches[record.id]

    return Hijack(run, content_type=streams.RAW_STREAM if tty else streams.MULTIPLEXED)


async def _write_quietly(raw: Raw, data: bytes) -> None:
    try:
        await raw.write(data)
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass


@routes.post("/containers/{id}/resize", "resize container tty")
async def resize(app: App, request: Request) -> Reply:
    rows = request.int_arg("h", None, minimum=0)
    columns = request.int_arg("w", None, minimum=0)
    if rows is None or columns is None:
        raise InvalidArgumentError("resize needs h and w", op="resize")
    await app.workers.call(control.resize, request.params["id"], rows, columns)
    return empty(200)
