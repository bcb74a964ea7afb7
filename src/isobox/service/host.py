"""What isobox finds on this host, for `isobox info` and inspect."""

from __future__ import annotations

from typing import Any

from isobox.errors import IsoboxError
from isobox.linux import cgroups
from isobox.service.context import open_context


def cgroup_version() -> str:
    """"v1" (hybrid hosts too) or "v2"."""
    return cgroups.version().value


def info() -> dict[str, Any]:
    from isobox import __version__
    from isobox.drivers.container.runtime import probe

    ctx = open_context()
    facts: dict[str, Any] = {
        "version": __version__,
        "state": str(ctx.paths.lib),
        "run": str(ctx.paths.run),
        "cgroups": cgroups.version().value,
    }
    try:
        runtime = probe(ctx.paths.run)
        facts["container_runtime"] = f"{runtime.name} ({runtime.path})"
    except IsoboxError as exc:
        facts["container_runtime"] = f"none: {exc}"
    try:
        from isobox.drivers.vm import accel

        chosen = accel.detect()
        facts["vm_accelerator"] = f"{chosen.name}: {chosen.reason}"
    except (ImportError, AttributeError):
        facts["vm_accelerator"] = "unavailable (VM driver not installed)"
    kernel = ctx.paths.kernel_dir / "current" / "vmlinuz"
    facts["vm_kernel"] = str(kernel.resolve()) if kernel.exists() else "missing (run scripts/setup)"
    facts["images"] = len(ctx.images.list())
    return facts
