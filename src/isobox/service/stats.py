"""`isobox stats`: samples of what running workloads use, and the figures Docker shows from two of them.

A sample is the driver's (CPU time, memory and its limit, processes) with the network and block I/O the host
counts for the workload: bytes through its host-side interfaces (a container's veth, a VM's TAP, each seen
from the other end, so the host's transmitted bytes are the workload's received ones), and block I/O from its
cgroup, or for a VM, whose cgroup is outside blkio on a v1 host, what its processes (QEMU, virtiofsd) read
and wrote (/proc/PID/io). CPU % is the CPU time used between two samples over the time between them, per
CPU as Docker's (two busy CPUs show 200%).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from isobox.linux import counters
from isobox.linux.cgroups import WorkloadCgroup
from isobox.model.network import NetworkMode
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind
from isobox.model.status import Status
from isobox.service import workloads
from isobox.service.context import Context


@dataclass(frozen=True)
class Sample:
    id: str
    name: str
    kind: Kind
    taken_at_s: float  # time.monotonic()
    cpu_ns: int
    memory_bytes: int
    memory_limit_bytes: int  # the workload's limit, or the host's memory when it has none (as Docker shows)
    pids: int
    net_rx_bytes: int
    net_tx_bytes: int
    block_read_bytes: int
    block_write_bytes: int

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory_bytes / self.memory_limit_bytes if self.memory_limit_bytes else 0.0


def cpu_percent(before: Sample | None, after: Sample) -> float:
    """CPU time used between the samples over the wall time between them, in percent of one CPU."""
    if before is None or before.id != after.id:
        return 0.0
    elapsed_ns = (after.taken_at_s - before.taken_at_s) * 1e9
    used_ns = after.cpu_ns - before.cpu_ns
    return 100.0 * used_ns / elapsed_ns if elapsed_ns > 0 and used_ns > 0 else 0.0


def _network(record: WorkloadRecord) -> tuple[int, int]:
    network = record.plan.network
    if network is None or network.mode is not NetworkMode.BRIDGE:
        return 0, 0  # none: loopback only; host: the host's own traffic is not the workload's
    received = sent = 0
    for interface in network.interfaces:
        host_rx, host_tx = counters.interface_bytes(interface.host_ifname)
        received += host_tx
        sent += host_rx
    return received, sent


def _block(record: WorkloadRecord) -> tuple[int, int]:
    cgroup = WorkloadCgroup.of(record.id)
    counted = cgroup.block_io()
    if counted is not None:
        return counted
    read = written = 0
    for pid in cgroup.pids():
        pid_read, pid_written = counters.process_io_bytes(pid)
        read += pid_read
        written += pid_written
    return read, written


def sample(ctx: Context, name_or_id: str) -> Sample:
    """One sample of a workload (a stopped one reads as zeros, as in Docker's --all)."""
    record = workloads.get(ctx, name_or_id)
    taken = time.monotonic()
    if record.status not in (Status.RUNNING, Status.PAUSED):
        return Sample(record.id, record.name, record.kind, taken, 0, 0, 0, 0, 0, 0, 0, 0)
    from isobox.service import control

    values = control.stats(ctx, record.id)
    net_rx, net_tx = _network(record)
    block_read, block_write = _block(record)
    limit = values.memory_limit_bytes or counters.total_memory_bytes()
    return Sample(record.id, record.name, record.kind, taken, values.cpu_usage_ns, values.memory_bytes, limit,
                  values.pids, net_rx, net_tx, block_read, block_write)
