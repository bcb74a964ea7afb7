"""System endpoints: /_ping, /version, /info, /system/df, /auth (/build: build.py, /events: events.py)."""

from __future__ import annotations

import os
import platform
import socket
import time
from pathlib import Path
from typing import Any

from isobox import __version__
from isobox.api import errors
from isobox.api.app import App
from isobox.api.messages import Reply, Request, json_reply, require_type
from isobox.api.routing import API_VERSION, MIN_API_VERSION, RouteTable, text
from isobox.errors import ImagePullError, InvalidArgumentError
from isobox.images.auth import Credentials
from isobox.service import inspect, registry_access
from isobox.service.context import Context

routes = RouteTable()

PING_HEADERS = (
    ("Builder-Version", "1"),  # the classic builder's API (api/build.py), not BuildKit's
    ("Swarm", "inactive"),
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Pragma", "no-cache"),
)


@routes.get("/_ping", "ping")
async def ping(app: App, request: Request) -> Reply:
    return Reply(200, b"OK", "text/plain; charset=utf-8", PING_HEADERS)


@routes.head("/_ping", "ping")
async def ping_head(app: App, request: Request) -> Reply:
    return Reply(200, b"", "text/plain; charset=utf-8", PING_HEADERS)


def version_document() -> dict[str, Any]:
    details = {"ApiVersion": text(API_VERSION), "MinAPIVersion": text(MIN_API_VERSION), "Os": "linux",
               "Arch": "amd64", "KernelVersion": os.uname().release, "GitCommit": "",
               "GoVersion": f"python{platform.python_version()}", "BuildTime": "", "Experimental": "false"}
    return {
        "Platform": {"Name": f"isobox {__version__}"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__, "ApiVersion": details["ApiVersion"], "MinAPIVersion": details["MinAPIVersion"],
        "GitCommit": "", "GoVersion": details["GoVersion"], "Os": "linux", "Arch": "amd64",
        "KernelVersion": details["KernelVersion"], "BuildTime": "",
    }


@routes.get("/version", "version")
async def version(app: App, request: Request) -> Reply:
    return json_reply(version_document())


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip('"')
    except OSError:
        pass
    return "Linux"


def info_document(ctx: Context, insecure: tuple[str, ...]) -> dict[str, Any]:
    from isobox.service import host, workloads

    records = workloads.list_workloads(ctx, all=True)
    counts = {state: sum(1 for r in records if r.status.value == state) for state in ("running", "paused")}
    facts = host.info()
    runtime = str(facts.get("container_runtime", "runc")).split(" ")[0]
    return {
        "ID": "", "Containers": len(records), "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"],
        "ContainersStopped": len(records) - counts["running"] - counts["paused"],
        "Images": len(ctx.images.list()), "Driver": "overlay", "DriverStatus": [],
        "DockerRootDir": str(ctx.paths.lib),
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["k8s-file"]},
        "MemoryLimit": True, "SwapLimit": False, "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True,
        "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True, "Debug": False, "NFd": 0,
        "OomKillDisable": False, "NGoroutines": 0, "SystemTime": inspect.rfc3339(time.time()),
        "LoggingDriver": "k8s-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": host.cgroup_version().removeprefix("v"), "NEventsListener": 0,
        "KernelVersion": os.uname().release, "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux",
        "Architecture": os.uname().machine, "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": [],
                           "IndexConfigs": {r: {"Name": r, "Mirrors": [], "Secure": False, "Official": False}
                                            for r in insecure}},
        "NCPU": os.cpu_count() or 1, "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": {runtime: {"path": runtime}}, "DefaultRuntime": runtime,
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True,  # workloads outlive the server: conmon and QEMU run on their own
        "Isolation": "", "InitBinary": "tini", "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [], "Isobox": facts,
    }


@routes.get("/info", "info")
async def info(app: App, request: Request) -> Reply:
    return json_reply(await app.workers.call(info_document, app.insecure_registries))


def disk_usage_document(ctx: Context) -> dict[str, Any]:
    from isobox.service import system, volumes, workloads

    records = workloads.list_workloads(ctx, all=True)
    used = {r.plan.image_id for r in records}
    images = []
    for record, names in ctx.images.list():
        summary = inspect.image_summary(record, names)
        summary["Containers"] = sum(1 for r in records if r.plan.image_id == record.id)
        images.append(summary)
    containers = []
    for workload in records:
        summary = inspect.container_summary(workload)
        summary["SizeRw"] = system.du(Path(workload.plan.workload_dir))
        containers.append(summary)
    volume_docs = []
    for volume in volumes.list_volumes(ctx):
        document = inspect.volume_document(volume)
        users = volumes.store(ctx).users(volume.name)
        document["UsageData"] = {"Size": system.du(Path(volume.path)), "RefCount": len(users)}
        volume_docs.append(document)
    layers = system.du(ctx.paths.layers) if ctx.paths.layers.is_dir() else 0
    return {"LayersSize": layers, "Images": images, "Containers": containers, "Volumes": volume_docs,
            "BuildCache": [], "Isobox": {"ImagesInUse": len(used)}}


@routes.get("/system/df", "disk usage")
async def disk_usage(app: App, request: Request) -> Reply:
    return json_reply(await app.workers.call(disk_usage_document))


@routes.post("/auth", "log in")
async def auth(app: App, request: Request) -> Reply:
    """Check credentials against a registry (as `isobox login` does); like dockerd, store nothing."""
    body = await request.json()
    username = require_type(body.get("username") or "", str, "username")
    password = require_type(body.get("password") or "", str, "password")
    server = require_type(body.get("serveraddress") or "docker.io", str, "serveraddress")
    if not username or not password:
        raise InvalidArgumentError("username and password are required", op="log in")
    try:
        await app.workers.call(registry_access.check_credentials, server, Credentials(username, password),
                               insecure_registries=app.insecure_registries)
    except ImagePullError as exc:
        if "access denied" in str(exc) or "401" in str(exc):
            raise errors.ApiError(401, f"login to {server} failed: {exc}") from exc
        raise
    return json_reply({"Status": "Login Succeeded", "IdentityToken": ""})


