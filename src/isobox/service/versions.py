"""`isobox version`: the versions of isobox and of the programs it drives on this host (the OCI runtime,
conmon, QEMU), as `docker version` shows its client's and its engine's components."""

from __future__ import annotations

import os
import platform
import re
import shutil
from dataclasses import dataclass

from isobox.command import run
from isobox.errors import IsoboxError
from isobox.linux import cgroups

_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:[-+~][\w.~+-]*)?")


@dataclass(frozen=True)
class Component:
    name: str
    version: str  # "" when the program is missing
    path: str = ""


def _tool(name: str, *args: str) -> Component:
    """A program's version from its ``--version`` output (its first version-looking word)."""
    path = shutil.which(name) or ""
    if not path:
        return Component(name, "")
    try:
        text = run([path, *args], op=f"ask {name} its version", check=False, timeout_s=10.0)
    except IsoboxError:
        return Component(name, "", path)
    found = _VERSION.search(text)
    return Component(name, found.group(0) if found else text.strip().splitlines()[0] if text.strip() else "", path)


def components() -> list[Component]:
    """isobox itself, then the runtime (what ISOBOX_RUNTIME names, else runc and crun), conmon and QEMU."""
    from isobox import __version__

    runtimes = [os.environ["ISOBOX_RUNTIME"]] if os.environ.get("ISOBOX_RUNTIME") else ["runc", "crun"]
    found = [Component("isobox", __version__)]
    found += [_tool(name, "--version") for name in runtimes]
    found += [_tool("conmon", "--version"), _tool("qemu-system-x86_64", "--version")]
    return found


def host_facts() -> dict[str, str]:
    return {
        "os": "linux",
        "arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        "kernel": os.uname().release,
        "python": platform.python_version(),
        "cgroups": cgroups.version().value,
    }
