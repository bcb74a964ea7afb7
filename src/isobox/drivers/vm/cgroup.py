"""The cgroup that holds one VM's QEMU process: /sys/fs/cgroup/isobox/<id> (v2) or
/sys/fs/cgroup/<controller>/isobox/<id> for each v1 controller isobox uses.

isobox only ever creates, reads and removes its own leaf directories (and the shared ``isobox``
parent, which it never removes: another workload may use it). QEMU is started inside the cgroup
(the launcher writes its own pid to cgroup.procs before exec), so every thread QEMU creates and the
daemonized child are accounted from the first instruction.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

from isobox.errors import HostError
from isobox.model.record import Stats

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpuacct", "pids")  # no cpuset (needs cpus/mems first)


@dataclass(frozen=True)
class VMCgroup:
    directories: tuple[Path, ...]
    unified: bool

    @classmethod
    def for_workload(cls, workload_id: str, root: Path = CGROUP_ROOT) -> VMCgroup:
        if (root / "cgroup.controllers").exists():
            return cls((root / "isobox" / workload_id,), unified=True)
        found = tuple(root / c / "isobox" / workload_id for c in V1_CONTROLLERS if (root / c / "tasks").exists())
        return cls(found, unified=False)

    def create(self) -> None:
        for directory in self.directories:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HostError(f"cannot create cgroup: {exc}", op="create VM cgroup", path=str(directory)) from exc

    def limit_memory(self, limit_bytes: int) -> None:
        """Cap what the VM's host processes may hold (QEMU with the guest's RAM, virtiofsd, and the host
        page cache of its disks, which the kernel reclaims before it reaches for the OOM killer)."""
        for directory in self.directories:
            if self.unified:
                name = "memory.max"
            elif directory.parent.parent.name == "memory":
                name = "memory.limit_in_bytes"
            else:
                continue
            try:
                (directory / name).write_text(str(limit_bytes))
            except OSError as exc:
                raise HostError(f"cannot set the VM's memory limit: {exc}", op="start VM", path=str(directory)) from exc

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(directory / "cgroup.procs" for directory in self.directories)

    def remove(self, timeout_s: float = 5.0) -> None:
        """Remove the leaf directories; a cgroup is busy for a moment after its last process exits."""
        deadline = time.monotonic() + timeout_s
        for directory in self.directories:
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise HostError(
                            f"cannot remove cgroup: {exc}", op="remove VM cgroup", path=str(directory)
                        ) from exc
                    time.sleep(0.05)

    def _read(self, controller: str, name: str) -> str | None:
        for directory in self.directories:
            if self.unified or directory.parent.parent.name == controller:
                with contextlib.suppress(OSError):
                    return (directory / name).read_text()
        return None

    def stats(self) -> Stats:
        if self.unified:
            cpu_text = self._read("", "cpu.stat") or ""
            usage_us = next(
                (int(line.split()[1]) for line in cpu_text.splitlines() if line.startswith("usage_usec ")), 0
            )
            return Stats(
                cpu_usage_ns=usage_us * 1000,
                memory_bytes=_int(self._read("", "memory.current")),
                memory_limit_bytes=_int(self._read("", "memory.max")),
                pids=_int(self._read("", "pids.current")),
            )
        return Stats(
            cpu_usage_ns=_int(self._read("cpuacct", "cpuacct.usage")),
            memory_bytes=_int(self._read("memory", "memory.usage_in_bytes")),
            memory_limit_bytes=_int(self._read("memory", "memory.limit_in_bytes")),
            pids=_int(self._read("pids", "pids.current")),
        )


def _int(text: str | None) -> int:
    try:
        return int((text or "0").strip())
    except ValueError:  # "max"
        return 0


def pids_in(cgroup: VMCgroup) -> list[int]:
    pids: set[int] = set()
    for procs in cgroup.procs_files:
        with contextlib.suppress(OSError):
            pids.update(int(line) for line in procs.read_text().split())
    return sorted(pids - {os.getpid()})
