"""Counters the kernel keeps that `isobox stats` shows: bytes through a network interface, bytes a process read
from and wrote to storage, and the host's memory."""

from __future__ import annotations

from pathlib import Path

SYS_NET = Path("/sys/class/net")


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def interface_bytes(ifname: str) -> tuple[int, int]:
    """(received, transmitted) bytes of a host interface (Documentation/ABI/testing/sysfs-class-net-statistics);
    (0, 0) when it is gone."""
    if not ifname or "/" in ifname or ifname in (".", ".."):
        return 0, 0
    statistics = SYS_NET / ifname / "statistics"
    return _read_int(statistics / "rx_bytes"), _read_int(statistics / "tx_bytes")


def process_io_bytes(pid: int) -> tuple[int, int]:
    """(read, written) bytes a process made the storage layer fetch and send (/proc/PID/io read_bytes and
    write_bytes, proc(5)), which QEMU's disk I/O is; (0, 0) when the process is gone or hides it."""
    values = {"read_bytes": 0, "write_bytes": 0}
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in values:
            try:
                values[key] = int(value)
            except ValueError:
                pass
    return values["read_bytes"], values["write_bytes"]


def total_memory_bytes() -> int:
    """MemTotal of /proc/meminfo: what Docker shows as the limit of a workload without one."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0
