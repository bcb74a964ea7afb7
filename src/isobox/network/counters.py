"""Traffic counters of a host interface (the kernel's /sys/class/net/IF/statistics, sysfs-rules.rst)."""

from __future__ import annotations

from pathlib import Path

COUNTERS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors", "tx_dropped")


def read(ifname: str) -> dict[str, int]:
    """The counters of ``ifname`` as the host sees them; {} if the interface is gone."""
    base = Path("/sys/class/net") / ifname / "statistics"
    values: dict[str, int] = {}
    for name in COUNTERS:
        try:
            values[name] = int((base / name).read_text())
        except (OSError, ValueError):
            return {}
    return values


def as_seen_inside(host_side: dict[str, int]) -> dict[str, int]:
    """A veth's or TAP's host end counts what the workload sends as received, and the other way round."""
    swapped = {}
    for name, value in host_side.items():
        direction, _, what = name.partition("_")
        swapped[("tx" if direction == "rx" else "rx") + "_" + what] = value
    return swapped
