"""isobox: run any OCI image as a container or as a virtual machine.

The Python API offers every operation of the CLI::

    import isobox
    isobox.pull("localhost:5000/app:1")
    result = isobox.run("busybox", ["echo", "hello"], remove=True)            # container
    result = isobox.run("busybox", ["echo", "hello"], remove=True, vm=True)   # virtual machine
    print(result.exit_code, result.stdout)
    for w in isobox.list_workloads(all=True):
        print(w.name, w.status)

Names are loaded on first use, so `import isobox` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Image", "IsoboxError", "RunResult", "Workload", "commit", "compare", "create", "exec", "explain", "images",
    "inspect", "kill", "list_workloads", "logs", "pause", "pull", "remove", "remove_image", "restart", "run", "scan",
    "snapshot_create", "snapshot_remove", "snapshot_restore", "snapshots", "spec", "start", "stats", "stop", "tag",
    "top", "unpause", "volume_create", "volume_remove", "volume_resize", "volumes", "wait",
]


def __getattr__(name: str) -> Any:
    if name == "IsoboxError":
        from isobox.errors import IsoboxError

        return IsoboxError
    if name in __all__:
        return getattr(importlib.import_module("isobox._api"), name)
    raise AttributeError(f"module 'isobox' has no attribute {name!r}")
