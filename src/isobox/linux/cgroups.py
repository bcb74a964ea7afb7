"""The cgroups of workloads: /isobox/<id> in each hierarchy (cgroup v1, hybrid hosts included) or in the
unified one (v2). One place for both drivers: a container's cgroup is made by the OCI runtime (this module
reads and removes it), a VM's by isobox itself (QEMU is started inside it).

isobox only ever creates, reads and removes leaf directories below its own ``isobox`` directory in each
hierarchy (never the shared parent, which other workloads use, and never anything else: on this kind of
host the machine's own supervisor uses the cgroup tree too).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from isobox.errors import HostError, InvalidArgumentError

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "isobox"
# The v1 controllers a VM's QEMU is placed in (no cpuset: a new cpuset cgroup needs cpus and mems first).
VM_CONTROLLERS_V1 = ("memory", "cpuacct", "pids")
REMOVE_TIMEOUT_S = 5.0


class CgroupVersion(enum.StrEnum):
    V1 = "v1"
    V2 = "v2"


def version(root: Path = CGROUP_ROOT) -> CgroupVersion:
    """v2 only when the root itself is cgroup2 (unified); hybrid hosts count as v1."""
    return CgroupVersion.V2 if (root / "cgroup.controllers").exists() else CgroupVersion.V1


def workload_path(workload_id: str) -> str:
    """The cgroupsPath given to the OCI runtime (cgroupfs driver): /isobox/<id>."""
    return f"/{PARENT}/{workload_id}"


@dataclass(frozen=True)
class CgroupStats:
    cpu_ns: int
    memory_bytes: int
    memory_limit_bytes: int  # 0: no limit
    pids: int
    io_bytes: tuple[tuple[str, str, int], ...] = ()  # (major:minor, "read" | "write", bytes): the cgroup's I/O


@dataclass(frozen=True)
class WorkloadCgroup:
    """/isobox/<id> in every hierarchy of this host."""

    workload_id: str
    directories: tuple[Path, ...]  # one per hierarchy (v1: per controller mount, plus "unified" on hybrid)
    unified: bool

    @classmethod
    def of(cls, workload_id: str, root: Path = CGROUP_ROOT) -> WorkloadCgroup:
        if not workload_id or "/" in workload_id or workload_id in (".", ".."):
            raise InvalidArgumentError(f"invalid cgroup name {workload_id!r}", op="find cgroup")
        if version(root) is CgroupVersion.V2:
            return cls(workload_id, (root / PARENT / workload_id,), unified=True)
        hierarchies = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
        return cls(workload_id, tuple(h / PARENT / workload_id for h in hierarchies), unified=False)

    def _controller_dir(self, controller: str) -> Path | None:
        if self.unified:
            return self.directories[0]
        # A v1 hierarchy may hold several controllers ("cpu,cpuacct", with symlinks named after each).
        return next((d for d in self.directories if controller in d.parent.parent.name.split(",")), None)

    # ---- a VM's cgroup, made by isobox ---------------------------------------------------------

    def create(self) -> None:
        """Make the cgroup for a VM (v2: one directory; v1: VM_CONTROLLERS_V1)."""
        for controller in ("",) if self.unified else VM_CONTROLLERS_V1:
            directory = self._controller_dir(controller)
            if directory is None or not (directory.parent.parent / "cgroup.procs").exists():
                continue
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HostError(f"cannot create cgroup: {exc.strerror}", op="create cgroup",
                                path=str(directory)) from exc

    def limit_memory(self, limit_bytes: int) -> None:
        """Cap what the workload's host processes may hold (for a VM: QEMU with the guest's RAM, virtiofsd,
        and the host page cache of its disks, which the kernel reclaims before it reaches for the OOM killer)."""
        directory = self._controller_dir("memory")
        if directory is None:
            return
        name = "memory.max" if self.unified else "memory.limit_in_bytes"
        try:
            (directory / name).write_text(str(limit_bytes))
        except OSError as exc:
            raise HostError(f"cannot set the memory limit: {exc.strerror}", op="limit memory",
                            path=str(directory)) from exc

    @property
    def procs_files(self) -> tuple[Path, ...]:
        """cgroup.procs of each directory that exists (a process written to them joins the cgroup)."""
        return tuple(d / "cgroup.procs" for d in self.directories if d.is_dir())

    # ---- reading -------------------------------------------------------------------------------

    def pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(line) for line in procs.read_text().split())
        return sorted(found - {os.getpid()})

    def stats(self) -> CgroupStats:
        if self.unified:
            base = self.directories[0]
            return CgroupStats(
                cpu_ns=_read_key(base / "cpu.stat", "usage_usec") * 1000,
                memory_bytes=_read_int(base / "memory.current"),
                memory_limit_bytes=_read_int(base / "memory.max"),
                pids=_read_int(base / "pids.current"),
                io_bytes=_io_v2(base / "io.stat"),
            )
        limit = self._read("memory", "memory.limit_in_bytes")
        return CgroupStats(
            cpu_ns=self._read("cpuacct", "cpuacct.usage"),
            memory_bytes=self._read("memory", "memory.usage_in_bytes"),
            memory_limit_bytes=0 if limit >= 1 << 62 else limit,  # v1 says "no limit" with a huge number
            pids=self._read("pids", "pids.current"),
            io_bytes=self._io_v1(),
        )

    def _io_v1(self) -> tuple[tuple[str, str, int], ...]:
        """blkio.throttle.io_service_bytes_recursive: "MAJ:MIN Read|Write|Sync|Async|Discard|Total N" lines
        (Documentation/admin-guide/cgroup-v1/blkio-controller.rst); a cgroup without blkio has none."""
        directory = self._controller_dir("blkio")
        if directory is None:
            return ()
        try:
            lines = (directory / "blkio.throttle.io_service_bytes_recursive").read_text().splitlines()
        except OSError:
            return ()
        found = []
        for line in lines:
            fields = line.split()
            if len(fields) == 3 and fields[1] in ("Read", "Write") and fields[2].isdigit():
                found.append((fields[0], fields[1].lower(), int(fields[2])))
        return tuple(found)

    def block_io(self) -> tuple[int, int] | None:
        """(read, written) bytes of block I/O (v1 blkio.throttle.io_service_bytes_recursive, v2 io.stat), or
        None where the cgroup has no such controller (a VM's v1 cgroup is not in blkio)."""
        directory = self._controller_dir("io" if self.unified else "blkio")
        name = "io.stat" if self.unified else "blkio.throttle.io_service_bytes_recursive"
        if directory is None or not (directory / name).exists():
            return None
        try:
            text = (directory / name).read_text()
        except OSError:
            return None
        read = written = 0
        for line in text.splitlines():
            words = line.split()
            if self.unified:  # "8:0 rbytes=1 wbytes=2 rios=…"
                fields = dict(w.partition("=")[::2] for w in words[1:])
                read += int(fields.get("rbytes", "0") or 0)
                written += int(fields.get("wbytes", "0") or 0)
            elif len(words) == 3 and words[2].isdigit():  # "8:0 Read 4096"
                read += int(words[2]) if words[1] == "Read" else 0
                written += int(words[2]) if words[1] == "Write" else 0
        return read, written

    def set_limits(self, *, memory_bytes: int | None = None, cpu_quota_us: int | None = None,
                   cpu_period_us: int | None = None, pids_limit: int | None = None) -> None:
        """Change a running workload's limits in place (`isobox update`): -1 lifts a limit. v1 files
        (memory.limit_in_bytes, cpu.cfs_quota_us, pids.max) or v2 ones (memory.max, cpu.max, pids.max)."""
        writes: list[tuple[str, str, str]] = []
        if memory_bytes is not None:
            writes += self._memory_writes(memory_bytes)
        if cpu_quota_us is not None:
            if self.unified:
                quota = "max" if cpu_quota_us < 0 else str(cpu_quota_us)
                writes.append(("cpu", "cpu.max", f"{quota} {cpu_period_us or 100_000}"))
            else:
                if cpu_period_us:
                    writes.append(("cpu", "cpu.cfs_period_us", str(cpu_period_us)))
                writes.append(("cpu", "cpu.cfs_quota_us", str(cpu_quota_us)))
        if pids_limit is not None:
            writes.append(("pids", "pids.max", "max" if pids_limit <= 0 else str(pids_limit)))
        for controller, name, value in writes:
            directory = self._controller_dir(controller)
            if directory is None or not directory.is_dir():
                raise HostError(f"the workload has no {controller} cgroup to change", op="update",
                                id=self.workload_id)
            try:
                (directory / name).write_text(value)
            except OSError as exc:
                raise HostError(f"cannot write {value} to {name}: {exc.strerror}", op="update",
                                path=str(directory / name)) from exc

    def _memory_writes(self, memory_bytes: int) -> list[tuple[str, str, str]]:
        """The writes that set the memory limit. isobox gives containers no swap beyond their limit (memory+swap
        = memory, oci_spec): on v1 with swap accounting memory.memsw.limit_in_bytes follows, and as the kernel
        refuses a memory limit above memsw, the larger of the two moves first."""
        if self.unified:
            return [("memory", "memory.max", "max" if memory_bytes < 0 else str(memory_bytes))]
        value = str(memory_bytes)
        directory = self._controller_dir("memory")
        memsw = directory / "memory.memsw.limit_in_bytes" if directory is not None else None
        if memsw is None or not memsw.exists():
            return [("memory", "memory.limit_in_bytes", value)]
        current = _read_int(memsw)
        growing = memory_bytes < 0 or memory_bytes > current
        pair = [("memory", "memory.limit_in_bytes", value), ("memory", "memory.memsw.limit_in_bytes", value)]
        return pair[::-1] if growing else pair

    def _read(self, controller: str, name: str) -> int:
        directory = self._controller_dir(controller)
        return 0 if directory is None else _read_int(directory / name)

    # ---- ending --------------------------------------------------------------------------------

    def kill_all(self, timeout_s: float = REMOVE_TIMEOUT_S) -> None:
        """SIGKILL every process left in the cgroup and wait until it is empty."""
        deadline = time.monotonic() + timeout_s
        while pids := self.pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise HostError(f"processes {pids} of the workload do not end", op="remove cgroup",
                                id=self.workload_id)
            time.sleep(0.02)

    def remove(self, timeout_s: float = REMOVE_TIMEOUT_S) -> None:
        """Remove the (empty) leaf in every hierarchy. A cgroup stays busy for a moment after its last
        process exits (the kernel is still reaping it): EBUSY is retried until the timeout, then reported."""
        deadline = time.monotonic() + timeout_s
        for directory in self.directories:
            while True:
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise HostError(f"cannot remove cgroup: {exc.strerror}", op="remove cgroup",
                                        path=str(directory)) from exc
                    time.sleep(0.01)

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.directories)


def _read_int(path: Path) -> int:
    try:
        text = path.read_text().split()
    except OSError:
        return 0
    if not text or text[0] == "max":
        return 0
    try:
        return int(text[0])
    except ValueError:
        return 0


def _io_v2(path: Path) -> tuple[tuple[str, str, int], ...]:
    """io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N …" per device (Documentation/admin-guide/cgroup-v2.rst)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ()
    found = []
    for line in lines:
        device, *pairs = line.split()
        values = dict(pair.partition("=")[::2] for pair in pairs)
        for key, op in (("rbytes", "read"), ("wbytes", "write")):
            if values.get(key, "").isdigit():
                found.append((device, op, int(values[key])))
    return tuple(found)


def _read_key(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return 0
    return 0
