"""What a test may leave on the host: nothing. After every test with a private root (the `isobox_root`
fixture, so tests through the CLI and through `ctx` alike), every workload still recorded is removed with
-f and the root's networks pruned, and then nothing of it may remain: no mount under the root, no process
whose command line names the root (conmon, QEMU, virtiofsd, dnsmasq all do), no cgroup (cgroup v1 and v2
paths) and no veth or TAP device of a workload the test made."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from isobox.network import ipam

CGROUP_ROOT = Path("/sys/fs/cgroup")


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as info:
        return [line.split()[4] for line in info if line.split()[4].startswith(str(path))]


def processes_with(marker: str) -> list[Path]:
    """/proc entries of the live (not zombie) processes whose command line contains ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(proc)
    return found


def processes_naming(path: Path) -> list[str]:
    """Processes whose command line contains ``path``, as "pid: argv"."""
    found = []
    for proc in processes_with(str(path)):
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
        except OSError:
            continue
        found.append(f"{proc.name}: {argv}")
    return found


def cgroups_of(ids: Iterable[str]) -> list[str]:
    """Leaf cgroups of these workloads, in a v1 hierarchy (/sys/fs/cgroup/<controller>/isobox/<id>) or in the
    unified one (/sys/fs/cgroup/isobox/<id> on a v2 host, /sys/fs/cgroup/unified/isobox/<id> on a hybrid one)."""
    wanted = set(ids)
    found = [p for p in CGROUP_ROOT.glob("*/isobox/*") if p.name in wanted]
    found += [p for p in CGROUP_ROOT.glob("isobox/*") if p.name in wanted]
    return sorted(str(p) for p in found)


def interfaces_of(ids: Iterable[str]) -> list[str]:
    """veth and TAP devices named for these workloads (network/ipam.py names them from the workload id)."""
    present = {p.name for p in Path("/sys/class/net").iterdir()}
    names = {make(w, i) for w in ids for make in (ipam.veth_name, ipam.tap_name) for i in range(4)}
    return sorted(present & names)


def leftovers(root: Path, ids: set[str], *, settle_s: float = 5.0) -> list[str]:
    """Everything of the test still on the host; waits up to ``settle_s`` for what the kernel frees
    asynchronously (a namespace's veths, a cgroup just emptied)."""
    deadline = time.monotonic() + settle_s
    while True:
        found = [f"mount {m}" for m in mounts_under(root)]
        found += [f"process {p}" for p in processes_naming(root)]
        found += [f"cgroup {c}" for c in cgroups_of(ids)]
        found += [f"interface {i}" for i in interfaces_of(ids)]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
