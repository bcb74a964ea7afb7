"""Networks as values: published ports as the user writes them (-p), and the resolved network of a workload.

-p 8080:80                 host port 8080 on every host address → port 80 of the workload (tcp)
-p 127.0.0.1:8080:80/udp   only on 127.0.0.1, udp
-p 80  |  -p 127.0.0.1::80 a free host port chosen by isobox
-P                         every port the image EXPOSEs, each on a free host port

A NetworkPlan is what the service resolved (addresses, interface names, the network namespace) and what
drivers read: the container driver joins `netns_path`; the VM driver opens each interface's TAP.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from isobox.errors import InvalidArgumentError

# Names that select a mode instead of a network (Docker's): loopback only, or the host's own namespace.
NONE = "none"
HOST = "host"
DEFAULT_NETWORK = "isobox"



class Protocol(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"


class NetworkDriver(enum.StrEnum):
    BRIDGE = "bridge"  # one bridge on this host
    OVERLAY = "overlay"  # a bridge on each node, joined by VXLAN; one subnet, a slice of it per node


class NetworkMode(enum.StrEnum):
    BRIDGE = "bridge"  # one or more isobox networks
    NONE = "none"  # a private namespace with loopback only
    HOST = "host"  # the host's network namespace


def network_mode(names: tuple[str, ...], *, addressed: bool, vm: bool) -> NetworkMode:
    """The mode --network NAMES asks for; ``addressed``: -p, -P, --ip or --network-alias was given."""
    special = [n for n in names if n in (NONE, HOST)]
    if not special:
        return NetworkMode.BRIDGE
    if len(names) > 1:
        raise InvalidArgumentError(f"--network {special[0]} cannot be combined with other networks", op="create")
    if addressed:
        raise InvalidArgumentError(f"--network {special[0]} takes no -p, -P, --ip or --network-alias", op="create")
    if special[0] == HOST and vm:
        raise InvalidArgumentError("a VM cannot share the host's network namespace", op="create")
    return NetworkMode(special[0])


@dataclass(frozen=True)
class PortSpec:
    container_port: int
    host_port: int = 0  # 0: isobox picks a free one
    host_ip: str = ""  # "": every address of the host
    protocol: Protocol = Protocol.TCP

    @classmethod
    def parse(cls, text: str) -> PortSpec:
        body, _, proto = text.partition("/")
        try:
            protocol = Protocol(proto.lower() or "tcp")
        except ValueError:
            raise InvalidArgumentError(f"invalid protocol in {text!r}: use tcp or udp", op="parse --publish") from None
        if body.startswith("["):
            raise InvalidArgumentError(f"IPv6 host addresses are not supported yet: {text!r}", op="parse --publish")
        parts = body.split(":")
        if len(parts) > 3 or not all(p.isdigit() for p in parts[-2:] if p) or not parts[-1]:
            raise InvalidArgumentError(
                f"invalid port mapping {text!r}: use [hostip:][hostport:]port[/tcp|udp]", op="parse --publish"
            )
        host_ip = parts[0] if len(parts) == 3 else ""
        if host_ip:
            try:
                ipaddress.IPv4Address(host_ip)
            except ValueError:
                raise InvalidArgumentError(f"invalid host address in {text!r}", op="parse --publish") from None
        port = int(parts[-1])
        host = int(parts[-2] or 0) if len(parts) > 1 else 0
        if not 1 <= port <= 65535 or host > 65535:
            raise InvalidArgumentError(f"port out of range in {text!r}", op="parse --publish")
        return cls(container_port=port, host_port=host, host_ip=host_ip, protocol=protocol)

    @classmethod
    def from_exposed(cls, exposed: str) -> PortSpec:
        """An image's ExposedPorts key ('80/tcp') as a mapping to a free host port (-P)."""
        return cls.parse(exposed)


@dataclass(frozen=True)
class NetworkRecord:
    """A network as stored: its subnet is fixed at creation (the default network's may move while it is idle)."""

    id: str
    name: str
    subnet: str  # e.g. 10.199.0.0/24
    gateway: str  # the bridge's address, also the DNS server and DHCP server of the network
    bridge: str
    default: bool = False  # the network workloads join when they name none
    created_at: float = 0.0
    labels: tuple[tuple[str, str], ...] = ()
    driver: NetworkDriver = NetworkDriver.BRIDGE
    # Overlay networks (network/overlay.py): the VXLAN id shared by all nodes, this node's slice of the subnet
    # (its workloads' addresses; the gateway is the slice's first address) and the MTU left inside VXLAN.
    vni: int = 0
    pool: str = ""
    mtu: int = 0

    @property
    def allocation_pool(self) -> str:
        """Where this host's workloads get their addresses: its slice on an overlay, else the whole subnet."""
        return self.pool or self.subnet

    @property
    def prefix_len(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen


@dataclass(frozen=True)
class PortPlan:
    host_port: int
    container_port: int
    container_ip: str
    host_ip: str = ""
    protocol: Protocol = Protocol.TCP

    def __str__(self) -> str:
        return f"{self.host_ip or '0.0.0.0'}:{self.host_port}->{self.container_port}/{self.protocol.value}"


# Every network's workloads are also NAME.<network domain>; ".internal" is reserved for private use (ICANN, 2024),
# so these names never clash with public ones and never leave the host (each dnsmasq answers them itself).
DNS_SUFFIX = "isobox.internal"
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def network_domain(name: str, network_id: str) -> str:
    """NAME.isobox.internal, or n<id prefix>.isobox.internal for a network name that is no DNS label."""
    label = name if _DNS_LABEL.match(name) else "n" + network_id[:12]
    return f"{label}.{DNS_SUFFIX}"


@dataclass(frozen=True)
class InterfacePlan:
    network: str  # network name
    network_id: str
    bridge: str  # the host bridge this interface is a port of
    host_ifname: str  # host end: the veth (container) or the TAP (VM)
    ifname: str  # name inside the workload: eth0, eth1 …
    mac: str
    ip: str
    prefix_len: int
    gateway: str
    dns: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    mtu: int = 0  # 0: the kernel's default (1500); lower on overlay networks

    @property
    def domain(self) -> str:
        return network_domain(self.network, self.network_id)

    @property
    def netmask(self) -> str:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{self.prefix_len}").netmask)

    def kernel_ip_arg(self, hostname: str, *, default_route: bool = True) -> str:
        """The kernel's `ip=` parameter (Documentation/admin-guide/nfs/nfsroot.rst, needs CONFIG_IP_PNP):
        ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>."""
        gateway = self.gateway if default_route else ""
        dns = self.dns[0] if self.dns else ""
        return f"ip={self.ip}::{gateway}:{self.netmask}:{hostname}:{self.ifname}:off:{dns}"


@dataclass(frozen=True)
class Endpoint:
    """A workload's place on one network, as stored (one per network it is on)."""

    workload_id: str
    workload_name: str
    interface: InterfacePlan
    kind: str = "container"  # the workload's Kind value: a VM's entry carries its MAC for DHCP
    ports: tuple[PortPlan, ...] = ()


@dataclass(frozen=True)
class NetworkPlan:
    mode: NetworkMode = NetworkMode.BRIDGE
    netns_path: str | None = None  # containers: the namespace isobox created; None for VMs, none and host
    interfaces: tuple[InterfacePlan, ...] = ()  # the first one carries the default route and the ports
    ports: tuple[PortPlan, ...] = ()

    @property
    def dns_servers(self) -> tuple[str, ...]:
        seen: list[str] = []
        for interface in self.interfaces:
            seen += [server for server in interface.dns if server not in seen]
        return tuple(seen)

    @property
    def search_domains(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.domain for i in self.interfaces))


def hosts_file(network: NetworkPlan | None, hostname: str, host_text: str = "") -> str:
    """/etc/hosts of a workload: localhost, and its own name on each of its addresses.

    Other workloads are resolved through the network's DNS (they come and go; a static file would be stale).
    With the host network the host's own file is used, as Docker does.
    """
    if network is not None and network.mode is NetworkMode.HOST and host_text:
        return host_text if host_text.endswith("\n") else host_text + "\n"
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    addresses = [i.ip for i in network.interfaces] if network is not None else []
    lines += [f"{ip}\t{hostname}" for ip in addresses] or [f"127.0.1.1\t{hostname}"]
    return "\n".join(lines) + "\n"


def resolv_conf(network: NetworkPlan | None, host_text: str) -> str:
    """/etc/resolv.conf. On isobox networks: one server, the first network's dnsmasq, which answers for
    all of the workload's networks (it forwards the others' domains to their dnsmasq), and their domains
    first in the search list, so a plain name is looked up on each network in turn; then the host's
    search and options lines. Without an isobox network, the host's servers minus loopback ones
    (unreachable from a private namespace; with the host network they are kept)."""
    lines = host_text.splitlines()
    kept = [ln for ln in lines if ln.startswith(("search", "options"))]
    if network is not None and network.mode is NetworkMode.HOST:
        servers = [ln for ln in lines if ln.startswith("nameserver")]
    elif network is not None and network.dns_servers:
        servers = [f"nameserver {network.dns_servers[0]}"]
        host_search = [word for ln in lines if ln.startswith("search") for word in ln.split()[1:]]
        search = list(dict.fromkeys([*network.search_domains, *host_search]))
        kept = [f"search {' '.join(search)}"] + [ln for ln in lines if ln.startswith("options")]
    else:
        servers = [
            ln for ln in lines if ln.startswith("nameserver") and not ln.split()[-1].startswith(("127.", "::1"))
        ]
    text = "\n".join(servers + kept)
    return text + "\n" if text else ""
