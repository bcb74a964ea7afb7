"""Exec instances: POST /containers/{id}/exec makes one, /exec/{id}/start runs it (a hijacked stream, or
detached), /exec/{id}/json tells how it went, /exec/{id}/resize passes a size on.

Instances live in the server's memory, as dockerd keeps them per daemon: an id, the command, whether it
runs and its exit code. The process runs through the service layer (control.exec), in a container or a
VM alike; its exit code is recorded before the stream closes, so a client that inspects the instance right
after the end of its output (the docker CLI, docker-py's exec_run) reads it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from isobox.api import hijack, streams
from isobox.api.app import App, ExecInstance
from isobox.api.messages import Hijack, Raw, Reply, Request, empty, json_reply, require_type
from isobox.api.routing import RouteTable
from isobox.errors import InvalidArgumentError, InvalidStateError, IsoboxError, NotFoundError
from isobox.model.spec import parse_env
from isobox.model.status import Status
from isobox.model.streams import Attach, ExecSpec
from isobox.service import control, events, workloads
from isobox.service.context import Context

routes = RouteTable(missing="No such exec instance: {id}")
container_routes = RouteTable(missing="No such container: {id}")


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    require_type(value, list, key)
    return [require_type(item, str, f"{key}[]") for item in value]


def _console_size(body: dict[str, Any]) -> tuple[int, int] | None:
    size = body.get("ConsoleSize")
    if not size:
        return None
    require_type(size, list, "ConsoleSize")
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size):
        raise InvalidArgumentError("ConsoleSize must be [height, width]", op="exec")
    return int(size[0]), int(size[1])


def _register(ctx: Context, name: str, spec: ExecSpec, instance_id: str) -> str:
    record = workloads.get(ctx, name)
    if record.status is not Status.RUNNING:
        raise InvalidStateError(f"container {record.name} is not running", op="exec", id=record.name)
    events.container(ctx, record, f"exec_create: {' '.join(spec.argv)}", execID=instance_id)
    return record.id


@container_routes.post("/containers/{id}/exec", "create exec")
async def create(app: App, request: Request) -> Reply:
    body = await request.json()
    argv = _strings(body, "Cmd")
    if not argv:
        raise InvalidArgumentError("No exec command specified", op="exec")
    for key in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "Privileged"):
        if body.get(key) is not None:
            require_type(body[key], bool, key)
    if body.get("Privileged"):
        raise InvalidArgumentError("privileged exec is not supported: the exec has the workload's privileges",
                                   op="exec")
    attach_stdin = bool(body.get("AttachStdin"))
    env = parse_env(_strings(body, "Env"))
    if body.get("Tty") and "TERM" not in dict(env):
        env += (("TERM", "xterm"),)  # as dockerd sets it for an exec with a terminal
    spec = ExecSpec(
        argv=tuple(argv), env=env,
        cwd=require_type(body.get("WorkingDir") or "", str, "WorkingDir") or None,
        user=require_type(body.get("User") or "", str, "User") or None,
        tty=bool(body.get("Tty")), interactive=attach_stdin,
    )
    instance_id = secrets.token_hex(32)
    container_id = await app.workers.call(_register, request.params["id"], spec, instance_id)
    app.forget_old_execs()
    app.execs[instance_id] = ExecInstance(
        instance_id, container_id, spec, attach_stdin, bool(body.get("AttachStdout", True)),
        bool(body.get("AttachStderr", True)), detach_keys=str(body.get("DetachKeys") or ""),
        console_size=_console_size(body))
    return json_reply({"Id": instance_id}, 201)


def _instance(app: App, instance_id: str) -> ExecInstance:
    found = app.execs.get(instance_id)
    if found is None:
        raise NotFoundError(f"No such exec instance: {instance_id}", op="exec", id=instance_id)
    return found


def _finish(instance: ExecInstance, code: int | None) -> None:
    instance.running, instance.exit_code, instance.ended_at = False, code, time.time()


@routes.post("/exec/{id}/start", "start exec")
async def start(app: App, request: Request) -> Reply | Hijack:
    instance = _instance(app, request.params["id"])
    body = await request.json(required=False)
    if instance.started:
        raise InvalidStateError(f"exec {instance.id[:12]} has already been started", op="start exec")
    instance.started = instance.running = True
    size = _console_size(body)
    instance.console_size = size or instance.console_size
    if body.get("Detach"):
        detached = ExecSpec(**{**instance.spec.__dict__, "detach": True})
        code = await app.workers.call(control.exec, instance.container_id, detached, Attach(stdin=None),
                                      exec_id=instance.id)
        _finish(instance, code)
        return empty(200)
    tty = instance.spec.tty

    async def run(raw: Raw) -> None:
        channels = (hijack.open_terminal(stdin=instance.attach_stdin, size=instance.console_size) if tty
                    else hijack.open_channels(stdin=instance.attach_stdin, tty=False))
        instance.terminal = channels.pty[0] if channels.pty is not None else None

        def blocking(ctx: Context) -> int:
            try:
                return control.exec(ctx, instance.container_id, instance.spec, channels.attach(),
                                    exec_id=instance.id)
            finally:
                channels.close_worker_ends()

        code: int | None = None
        try:
            code = await hijack.relay(raw, channels, app.workers.call_long(blocking))
        except IsoboxError as exc:
            message = f"Error: {exc}\n".encode()
            code = 126
            try:
                await raw.write(message if tty else streams.frame("stderr", message))
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass
        finally:
            instance.terminal = None
            _finish(instance, code)

    return Hijack(run, content_type=streams.RAW_STREAM if tty else streams.MULTIPLEXED)


@routes.get("/exec/{id}/json", "inspect exec")
async def inspect(app: App, request: Request) -> Reply:
    instance = _instance(app, request.params["id"])
    spec = instance.spec
    return json_reply({
        "ID": instance.id, "Running": instance.running, "ExitCode": instance.exit_code,
        "ProcessConfig": {"tty": spec.tty, "entrypoint": spec.argv[0], "arguments": list(spec.argv[1:]),
                          "privileged": False, "user": spec.user or ""},
        "OpenStdin": instance.attach_stdin, "OpenStderr": instance.attach_stderr,
        "OpenStdout": instance.attach_stdout, "CanRemove": False, "ContainerID": instance.container_id,
        "DetachKeys": instance.detach_keys, "Pid": 0,
    })


@routes.post("/exec/{id}/resize", "resize exec tty")
async def resize(app: App, request: Request) -> Reply:
    instance = _instance(app, request.params["id"])
    rows = request.int_arg("h", None, minimum=0)
    columns = request.int_arg("w", None, minimum=0)
    if rows is None or columns is None:
        raise InvalidArgumentError("resize needs h and w", op="resize exec")
    if not instance.spec.tty:
        raise InvalidArgumentError(f"exec {instance.id[:12]} has no terminal", op="resize exec")
    instance.console_size = (rows, columns)
    if instance.terminal is not None and rows and columns:
        hijack.set_size(instance.terminal, rows, columns)
    return empty(200)


routes.routes.extend(container_routes.routes)
