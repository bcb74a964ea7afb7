"""Published ports: host ports chosen and checked before any rule exists.

A DNAT rule silently shadows a host process listening on the same port for traffic from outside, so a port
already bound on the host is refused, as Docker's port allocator refuses it ("port is already allocated").
Ports isobox picks (`-p 80`, `-P`) come from the kernel's ephemeral range (bind to port 0, ip(7)).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

from isobox.errors import ConflictError, InvalidArgumentError
from isobox.model.network import PortPlan, PortSpec, Protocol


def resolve(wanted: Iterable[PortSpec], published: Iterable[PortPlan], container_ip: str) -> tuple[PortPlan, ...]:
    """PortPlans for `wanted`, none clashing with what is `published` already (by any isobox workload)."""
    used = {(p.host_ip, p.host_port, p.protocol) for p in published}
    plans: list[PortPlan] = []
    for port in wanted:
        host_port = port.host_port or _free_port(port, used)
        same = [ip for ip, number, proto in used if number == host_port and proto == port.protocol]
        if any(not ip or not port.host_ip or ip == port.host_ip for ip in same):
            raise ConflictError(f"host port {host_port}/{port.protocol} is already published", op="publish port")
        if port.host_port:
            _check_bindable(port, host_port)
        used.add((port.host_ip, host_port, port.protocol))
        plans.append(PortPlan(host_port, port.container_port, container_ip, port.host_ip, port.protocol))
    return tuple(plans)


def _socket(port: PortSpec) -> socket.socket:
    kind = socket.SOCK_DGRAM if port.protocol is Protocol.UDP else socket.SOCK_STREAM
    return socket.socket(socket.AF_INET, kind)


def _check_bindable(port: PortSpec, host_port: int) -> None:
    with _socket(port) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((port.host_ip, host_port))
        except OSError as exc:
            where = f"{port.host_ip or '0.0.0.0'}:{host_port}/{port.protocol}"
            if exc.errno == errno.EADDRINUSE:
                raise ConflictError(f"host port {where} is in use on the host", op="publish port") from exc
            raise InvalidArgumentError(f"cannot publish on {where}: {exc.strerror}", op="publish port") from exc


def _free_port(port: PortSpec, used: set[tuple[str, int, Protocol]]) -> int:
    """An ephemeral port the kernel considers free now and no isobox workload publishes."""
    for _ in range(64):
        with _socket(port) as probe:
            probe.bind((port.host_ip, 0))
            number = int(probe.getsockname()[1])
        if not any(n == number for _, n, _ in used):
            return number
    raise ConflictError("no free host port found", op="publish port")
