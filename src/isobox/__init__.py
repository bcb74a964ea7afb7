"""isobox: run any OCI image as a container or as a virtual machine.

The Python API offers every operation of the CLI, with the same names and options::

    import isobox
    isobox.pull("localhost:5000/app:1")
    result = isobox.run("busybox", "echo hello", remove=True)             # a container
    result = isobox.run("busybox", ["echo", "hello"], remove=True, vm=True)  # a virtual machine
    print(result.exit_code, result.stdout)                                  # 0 b'hello\\n'
    web = isobox.run("busybox", "sleep 600", detach=True, name="web", memory="64m").record
    for w in isobox.list_workloads(all=True):
        print(w.name, w.status)                                             # web running
    isobox.remove("web", force=True)
    image = isobox.build("app", tags=["app:1"]).image_id                     # docker build -t app:1 app

Every function takes ``root=`` (a private state root; default ISOBOX_ROOT, else the system's) and raises
``isobox.IsoboxError`` subclasses (isobox.errors). Names are loaded on first use, so `import isobox` stays
cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_WORKLOADS = (
    "attach", "commit", "create", "exec", "inspect", "kill", "list_workloads", "logs", "pause", "remove", "rename",
    "restart", "run", "spec", "start", "stats", "stop", "top", "unpause", "wait",
)  # fmt: skip
_RESOURCES = (
    "compare", "console", "explain", "list_images", "list_networks", "list_snapshots", "list_volumes", "load",
    "login", "logout", "network_create", "network_inspect", "network_prune", "network_remove", "pull", "push",
    "remove_image", "save", "scan", "snapshot_clone", "snapshot_create", "snapshot_remove", "snapshot_restore",
    "system_df", "system_prune", "tag", "vm_create", "volume_create", "volume_prune", "volume_remove",
    "volume_resize",
)  # fmt: skip
_BUILD = ("build", "builder_prune")
_TYPES = {
    "IsoboxError": ("isobox.errors", "IsoboxError"),
    "Workload": ("isobox.model.record", "WorkloadRecord"),
    "RunResult": ("isobox.model.record", "RunResult"),
    "Image": ("isobox.images.store", "ImageRecord"),
    "Status": ("isobox.model.status", "Status"),
    "BuildResult": ("isobox.builder.outcome", "BuildResult"),
    "BuildEvent": ("isobox.builder.events", "BuildEvent"),
}

__all__ = sorted((*_WORKLOADS, *_RESOURCES, *_BUILD, *_TYPES))


def __getattr__(name: str) -> Any:
    if name in _TYPES:
        module, attribute = _TYPES[name]
        return getattr(importlib.import_module(module), attribute)
    if name in _WORKLOADS:
        return getattr(importlib.import_module("isobox.pyapi.workloads"), name)
    if name in _RESOURCES:
        return getattr(importlib.import_module("isobox.pyapi.resources"), name)
    if name in _BUILD:
        return getattr(importlib.import_module("isobox.pyapi.build"), name)
    raise AttributeError(f"module 'isobox' has no attribute {name!r}")
