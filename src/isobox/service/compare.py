"""`isobox compare`: the same workload as a container and as a VM, measured side by side on this host.

Each kind runs ``warmup`` times unmeasured (the VM's root disk and initramfs are built once per image,
page caches fill), then ``runs`` times measured, the two kinds interleaved so that a change in the
machine's load during the comparison weighs on both alike. Every run goes through the ordinary
service path (create, start attached, remove), so what is measured is what `isobox run` costs, and
the isolation policy applies (a kind it forbids is an error naming the rule).

Measured per run: seconds from the request to the first byte of output (stdout or stderr) and to the
exit, the peak memory of the workload's host processes (service/footprint.py), and the disk space
its workload directory holds when it has exited. The isolation facts come from the container's
actual security profile and from the VM's QEMU process as the host sees it.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from isobox.model import ids
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind, WorkloadSpec
from isobox.model.streams import Attach
from isobox.service import footprint
from isobox.service.context import Context

log = logging.getLogger(__name__)

MAX_CAPTURE_BYTES = 64 * 1024


@dataclass(frozen=True)
class RunSample:
    first_output_s: float | None  # None: the workload printed nothing
    total_s: float
    pss_bytes: int
    rss_bytes: int
    disk_bytes: int
    exit_code: int | None
    output: str


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float


@dataclass(frozen=True)
class Isolation:
    kernel: str
    syscall_surface: str
    capabilities: str
    namespaces: str
    host_process: str
    capability_names: tuple[str, ...] = ()  # the container's; the table prints only the count
    host_process_rank: int = -1  # footprint.ProcessFacts.role_rank of host_process (-1: none was seen)


@dataclass(frozen=True)
class KindResult:
    kind: Kind
    samples: tuple[RunSample, ...]
    isolation: Isolation
    shared_disk_bytes: int  # built once per image and shared by every workload of it (the VM's base disk)

    def summary(self, metric: str) -> Summary | None:
        values = [getattr(s, metric) for s in self.samples if getattr(s, metric) is not None]
        if not values:
            return None
        return Summary(float(statistics.median(values)), float(min(values)), float(max(values)))


@dataclass(frozen=True)
class Comparison:
    image: str
    command: tuple[str, ...]
    runs: int
    warmup: int
    host_kernel: str
    results: tuple[KindResult, ...]


def compare(
    ctx: Context,
    spec: WorkloadSpec,
    *,
    runs: int = 3,
    warmup: int = 1,
    kinds: tuple[Kind, ...] = (Kind.CONTAINER, Kind.VM),
    progress: Callable[[Step], None] | None = None,
) -> Comparison:
    """Run ``spec`` as each kind ``warmup`` + ``runs`` times; the measured runs are interleaved. ``progress``
    hears of each run before it starts. The host process of each kind is the one that holds the workload for its
    whole run (a container's conmon, a VM's QEMU: footprint.ProcessFacts.role_rank), so identical comparisons
    name the same one."""
    if runs < 1 or warmup < 0:
        from isobox.errors import InvalidArgumentError

        raise InvalidArgumentError("compare needs at least one run and a warm-up count >= 0", op="compare")
    base = replace(spec, kind_by_policy=False, remove=False, tty=False, interactive=False)
    from isobox.service import policy

    record = policy.image_record(ctx, spec.image, pull=True)
    for kind in kinds:  # a kind the policy forbids fails here, naming the rule, before anything runs
        policy.apply(ctx, replace(base, kind=kind), record.id)
    total = (warmup + runs) * len(kinds)
    done = 0
    for index in range(warmup):
        for kind in kinds:
            done += 1
            if progress is not None:
                progress(Step(done, total, kind, warmup=True, index=index + 1, of=warmup))
            _measure(ctx, replace(base, kind=kind), f"warmup{index}")
    samples: dict[Kind, list[RunSample]] = {kind: [] for kind in kinds}
    facts: dict[Kind, tuple[Isolation, int]] = {}
    for index in range(runs):
        for kind in kinds:
            done += 1
            if progress is not None:
                progress(Step(done, total, kind, warmup=False, index=index + 1, of=runs))
            sample, isolation, shared = _measure(ctx, replace(base, kind=kind), f"run{index}")
            samples[kind].append(sample)
            if kind not in facts or isolation.host_process_rank > facts[kind][0].host_process_rank:
                facts[kind] = (isolation, shared)
    results = tuple(KindResult(kind, tuple(samples[kind]), *facts[kind]) for kind in kinds)
    return Comparison(spec.image, spec.command, runs, warmup, platform.release(), results)


@dataclass(frozen=True)
class Step:
    """Which run `compare` is about to make: the ``index``-th of ``of`` (warm-up or measured) of a kind, and
    the ``number``-th of all ``total``."""

    number: int
    total: int
    kind: Kind
    warmup: bool
    index: int
    of: int

    def __str__(self) -> str:
        what = "warm-up run" if self.warmup else "run"
        return f"[{self.number}/{self.total}] {self.kind.value}: {what} {self.index} of {self.of}"


class _FirstByte:
    """Reads a pipe to its end in a thread; notes when the first byte arrived."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.first: float | None = None
        self.data = bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while chunk := os.read(self.fd, 65536):
            if self.first is None:
                self.first = time.monotonic()
            if len(self.data) < MAX_CAPTURE_BYTES:
                self.data += chunk[: MAX_CAPTURE_BYTES - len(self.data)]
        os.close(self.fd)


def _measure(ctx: Context, spec: WorkloadSpec, label: str) -> tuple[RunSample, Isolation, int]:
    from isobox.service import workloads

    spec = replace(spec, name=f"compare-{spec.kind.value}-{label}-{ids.new_id()[:8]}")
    read_fd, write_fd = os.pipe()
    reader = _FirstByte(read_fd)
    sampler: footprint.Sampler | None = None
    record: WorkloadRecord | None = None
    try:
        began = time.monotonic()
        record = workloads.create(ctx, spec)
        sampler = footprint.Sampler(record.id)
        sampler.start()
        result = workloads.start(ctx, record.id, attach=Attach(stdin=None, stdout=write_fd, stderr=write_fd))
        ended = time.monotonic()
        sampler.stop()
        os.close(write_fd)
        write_fd = -1
        reader.thread.join()
        disk = footprint.dir_size(Path(record.plan.workload_dir))
        isolation, shared = isolation_facts(result.record, sampler.main)
    finally:
        if sampler is not None:
            sampler.stop()
        if write_fd >= 0:
            os.close(write_fd)
        if record is not None:
            workloads.remove(ctx, record.id, force=True)
    # The reader thread may be scheduled only after the attached start returned: output that came at the
    # very end is then stamped a moment late, never later than the exit.
    first = None if reader.first is None else min(max(0.0, reader.first - began), ended - began)
    sample = RunSample(first, ended - began, sampler.peak_pss_bytes, sampler.peak_rss_bytes, disk,
                       result.exit_code, reader.data.decode(errors="replace"))
    log.debug("compare %s %s: %s", spec.kind.value, label, sample)
    return sample, isolation, shared


def isolation_facts(record: WorkloadRecord, process: footprint.ProcessFacts | None) -> tuple[Isolation, int]:
    """What separates the workload from the host, and the one-time disk its kind needs per image."""
    host = process_text(process)
    if record.kind is Kind.VM:
        base = record.driver_info.get("root_disk_base", "")
        shared = footprint.dir_size(Path(base)) if base and Path(base).is_dir() else _file_size(base)
        return _vm_isolation(record, process), shared
    from isobox.drivers.container import bundle, capabilities

    caps, seccomp_filter = bundle.security_profile(record.plan)
    return Isolation(
        kernel=f"shared host kernel {platform.release()}",
        syscall_surface=syscall_surface(seccomp_filter),
        capabilities=f"{len(caps)} of {len(capabilities.ALL_CAPABILITIES)}, on the host kernel",
        namespaces=", ".join(_container_namespaces(record)) or "unknown",
        host_process=host,
        capability_names=tuple(sorted(c.removeprefix("CAP_") for c in caps)),
        host_process_rank=process.role_rank if process is not None else -1,
    ), 0


def _vm_isolation(record: WorkloadRecord, process: footprint.ProcessFacts | None) -> Isolation:
    """The guest has a kernel of its own; on the host, what separates it is the QEMU process."""
    seccomp = f" (seccomp {process.seccomp})" if process else ""
    caps = f"; QEMU: {process.capabilities} on the host" if process else ""
    namespaces = f"; QEMU's own: {', '.join(process.own_namespaces) or 'none'}" if process else ""
    return Isolation(
        kernel=f"own guest kernel {record.driver_info.get('kernel', '')}".strip(),
        syscall_surface=f"guest kernel's own; host: QEMU's{seccomp}",
        capabilities=f"all, in the guest kernel{caps}",
        namespaces=f"own kernel{namespaces}",
        host_process=process_text(process),
        host_process_rank=process.role_rank if process is not None else -1,
    )


def syscall_surface(seccomp_filter: dict[str, object] | None) -> str:
    """How many syscalls a seccomp filter (OCI form) lets through."""
    if seccomp_filter is None:
        return "all host syscalls (no seccomp filter)"
    default = str(seccomp_filter.get("defaultAction", ""))
    allowed: set[str] = set()
    blocked: set[str] = set()
    rules = seccomp_filter.get("syscalls")
    for rule in rules if isinstance(rules, list) else []:
        names = set(rule.get("names") or []) if isinstance(rule, dict) else set()
        if rule.get("action") == "SCMP_ACT_ALLOW":
            allowed |= names
        else:
            blocked |= names
    if default == "SCMP_ACT_ALLOW":
        return f"all host syscalls but {len(blocked)} (seccomp)"
    return f"{len(allowed)} host syscalls allowed (seccomp, some only with restricted arguments)"


def _container_namespaces(record: WorkloadRecord) -> list[str]:
    import json

    try:
        config = json.loads((Path(record.plan.workload_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return []
    return sorted(str(ns.get("type")) for ns in config.get("linux", {}).get("namespaces", []) if isinstance(ns, dict))


def process_text(process: footprint.ProcessFacts | None) -> str:
    if process is None:
        return "not seen (exited between samples)"
    return (
        f"{process.command}: {process.capabilities} capabilities, seccomp {process.seccomp}, "
        f"own namespaces: {', '.join(process.own_namespaces) or 'none'}"
    )


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_blocks * 512 if path else 0
    except OSError:
        return 0
