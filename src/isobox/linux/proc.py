"""Facts about this process read from /proc."""

from __future__ import annotations

from pathlib import Path


def bounding_capabilities() -> int:
    """This process's capability bounding set (a container can never get more than this)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return 0
