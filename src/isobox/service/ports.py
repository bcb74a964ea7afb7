"""`isobox port`: where a workload's ports are published on the host."""

from __future__ import annotations

from dataclasses import dataclass

from isobox.service import workloads
from isobox.service.context import Context


@dataclass(frozen=True)
class Published:
    container_port: int
    protocol: str
    host_ip: str  # "0.0.0.0": every IPv4 address of the host
    host_port: int

    @property
    def host_address(self) -> str:
        return f"{self.host_ip}:{self.host_port}"


def published(ctx: Context, name_or_id: str) -> list[Published]:
    """The workload's published ports, by workload port (as `docker port` lists them)."""
    network = workloads.get(ctx, name_or_id).plan.network
    found = [Published(p.container_port, p.protocol.value, p.host_ip or "0.0.0.0", p.host_port)
             for p in (network.ports if network is not None else ())]
    return sorted(found, key=lambda p: (p.container_port, p.protocol, p.host_ip, p.host_port))
