"""What a workload costs the host, measured from outside: memory of its processes, disk of its directory.

The processes of a workload are found the same way for both kinds, without asking the driver: every
host process whose command line names the workload's id (conmon and the OCI runtime for a container,
QEMU for a VM: each carries the id in its argv) and all their descendants (the container's own
processes, children of conmon). Memory is the sum over them of PSS (proportional set size, shared
pages divided among their users; proc(5), /proc/PID/smaps_rollup) and of RSS, sampled while the
workload runs; the peak sample is what it cost.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")


@dataclass(frozen=True)
class ProcessFacts:
    """Isolation facts of one host process, read from /proc."""

    pid: int
    command: str
    capabilities: int  # number of effective capabilities
    seccomp: str  # "off", "strict" or "filter" (proc(5), Seccomp field)
    own_namespaces: tuple[str, ...]  # namespaces that differ from isobox's own

    @property
    def role_rank(self) -> int:
        """Whether this is the process that holds the workload on the host for its whole run, the same in every
        run of one command: a VM's QEMU, a container's monitor conmon (1); anything else (the runtime while it
        sets the container up, the container's own processes, which a short command may end before a sample
        sees them) never (0)."""
        return 1 if self.command.startswith("qemu-system") or self.command == "conmon" else 0


@dataclass
class Sampler:
    """Polls a workload's processes in a thread; keeps the peak memory and the biggest process's facts."""

    workload_id: str
    interval_s: float = 0.025
    peak_pss_bytes: int = 0
    peak_rss_bytes: int = 0
    samples: int = 0
    main: ProcessFacts | None = None  # the process that holds the workload (ProcessFacts.role_rank), else the first
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _cmdlines: dict[tuple[int, str], str] = field(default_factory=dict)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"sampler-{self.workload_id[:12]}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        pss_total = rss_total = 0
        for pid in self.pids():
            pss, rss = memory_kib(pid)
            pss_total += pss * 1024
            rss_total += rss * 1024
            if self.main is None or self.main.role_rank < 1:
                facts = process_facts(pid)
                if facts is not None and (self.main is None or facts.role_rank > self.main.role_rank):
                    self.main = facts
        self.samples += 1
        self.peak_pss_bytes = max(self.peak_pss_bytes, pss_total)
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss_total)

    def pids(self) -> set[int]:
        parents: dict[int, int] = {}
        anchors: set[int] = set()
        needle = self.workload_id
        for entry in os.scandir(PROC):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            parsed = _stat(pid)
            if parsed is None:
                continue
            parents[pid], start_time = parsed
            key = (pid, start_time)
            if key not in self._cmdlines:
                self._cmdlines[key] = _cmdline(pid)
            if needle in self._cmdlines[key] and pid != os.getpid():
                anchors.add(pid)
        return _with_descendants(anchors, parents)


def _with_descendants(anchors: set[int], parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(anchors), list(anchors)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _stat(pid: int) -> tuple[int, str] | None:
    """(ppid, start time) from /proc/PID/stat; the command name may hold spaces and ')', so split after it."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[1]), fields[19]


def _cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def memory_kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of a process in KiB; (0, 0) once it is gone or for kernel threads."""
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Pss", "Rss"):
            values[key] = int(rest.split()[0])
    return values.get("Pss", 0), values.get("Rss", 0)


def process_facts(pid: int) -> ProcessFacts | None:
    try:
        status = (PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    cap_eff = int(fields.get("CapEff", "0").strip(), 16)
    seccomp = {"0": "off", "1": "strict", "2": "filter"}.get(fields.get("Seccomp", "0").strip(), "unknown")
    own = []
    for name in NAMESPACES:
        try:
            if os.readlink(PROC / str(pid) / "ns" / name) != os.readlink(PROC / "self" / "ns" / name):
                own.append(name)
        except OSError:
            continue
    command = _cmdline(pid).split(" ", 1)[0].rsplit("/", 1)[-1]
    return ProcessFacts(pid, command, bin(cap_eff).count("1"), seccomp, tuple(own))


def dir_size(path: Path) -> int:
    """Bytes allocated under ``path`` (st_blocks, as du): no symlink followed, no mount point crossed
    (a container's rootfs overlay is mounted inside its directory), each hard-linked inode once."""
    try:
        root_dev = path.lstat().st_dev
    except OSError:
        return 0
    seen: set[tuple[int, int]] = set()
    total = 0
    for current, dirs, files in os.walk(path, followlinks=False):
        kept = []
        for name in dirs + files:
            try:
                info = os.lstat(os.path.join(current, name))
            except OSError:
                continue
            if info.st_dev != root_dev:
                continue  # another filesystem mounted here
            if stat.S_ISDIR(info.st_mode) and name in dirs:
                kept.append(name)
            key = (info.st_dev, info.st_ino)
            if key not in seen:
                seen.add(key)
                total += info.st_blocks * 512
        dirs[:] = kept
    return total
