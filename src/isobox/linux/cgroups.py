"""cgroup facts of this host: v1 (or hybrid) vs v2, and reading a workload's counters.

isobox only ever reads or removes cgroups below its own `isobox` directory in each hierarchy.
"""

from __future__ import annotations

import enum
import errno
import os
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "isobox"


class CgroupVersion(enum.StrEnum):
    V1 = "v1"
    V2 = "v2"


def version() -> CgroupVersion:
    """v2 only when /sys/fs/cgroup itself is cgroup2 (unified); hybrid hosts count as v1."""
    return CgroupVersion.V2 if (CGROUP_ROOT / "cgroup.controllers").exists() else CgroupVersion.V1


def workload_path(workload_id: str) -> str:
    """The cgroupsPath given to the OCI runtime (cgroupfs driver): /isobox/<id>."""
    return f"/{PARENT}/{workload_id}"


def _read_int(path: Path) -> int:
    try:
        text = path.read_text().split()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return 0
    if not text or text[0] == "max":
        return 0
    try:
        return int(text[0])
    except ValueError:
        return 0


def _read_key(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return 0
    return 0


def read_stats(cgroup: str) -> dict[str, int]:
    """cpu_ns, memory_bytes, memory_limit_bytes, pids for a cgroupsPath, v1 or v2."""
    rel = cgroup.lstrip("/")
    if version() is CgroupVersion.V2:
        base = CGROUP_ROOT / rel
        limit = _read_int(base / "memory.max")
        return {
            "cpu_ns": _read_key(base / "cpu.stat", "usage_usec") * 1000,
            "memory_bytes": _read_int(base / "memory.current"),
            "memory_limit_bytes": limit,
            "pids": _read_int(base / "pids.current"),
        }
    limit = _read_int(CGROUP_ROOT / "memory" / rel / "memory.limit_in_bytes")
    return {
        "cpu_ns": _read_int(CGROUP_ROOT / "cpuacct" / rel / "cpuacct.usage"),
        "memory_bytes": _read_int(CGROUP_ROOT / "memory" / rel / "memory.usage_in_bytes"),
        "memory_limit_bytes": 0 if limit >= 1 << 62 else limit,
        "pids": _read_int(CGROUP_ROOT / "pids" / rel / "pids.current"),
    }


def controllers_v1() -> list[str]:
    return sorted(p.name for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "unified")


BUSY_RETRIES = 100


def remove(cgroup: str) -> None:
    """Remove an (empty) cgroup isobox created, in every hierarchy; never anything outside /isobox/."""
    rel = cgroup.lstrip("/")
    if not rel.startswith(PARENT + "/") or ".." in rel.split("/"):
        raise ValueError(f"refusing to remove cgroup {cgroup!r}: not below /{PARENT}/")
    bases = [CGROUP_ROOT] if version() is CgroupVersion.V2 else [CGROUP_ROOT / c for c in controllers_v1()]
    if version() is CgroupVersion.V1 and (CGROUP_ROOT / "unified").is_dir():
        bases.append(CGROUP_ROOT / "unified")
    for base in bases:
        target = base / rel
        # A cgroup stays busy for a moment after its last process exits (the kernel is still
        # reaping it); retry EBUSY briefly, then leave it (the runtime's delete normally removes it).
        for _ in range(BUSY_RETRIES):
            try:
                os.rmdir(target)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    break
                time.sleep(0.01)
