"""Overlay networks: one subnet across nodes, a bridge on each node, VXLAN between them.

    node A: ibr-<id> 10.208.0.1/16 ─ veth … ─ ivx-<id> (VXLAN, VNI n, local 198.18.0.11) ┐ UDP 4789
    node B: ibr-<id> 10.208.1.1/16 ─ veth … ─ ivx-<id> (VXLAN, VNI n, local 198.18.0.12) ┘ unicast

- The subnet is split in one slice per node (`assign_slices`, pure): a node's workloads take their addresses
  from its slice, its bridge holds the slice's first address (their gateway and DNS server), and every
  interface is on the whole subnet, so workloads of all nodes are on one link and reach each other directly.
- The VXLAN device is unicast only: no multicast group (underlays often have none, and the test hosts do
  not route it). Broadcast and unknown destinations (ARP first of all) are sent to each other node in turn,
  from the all-zeros entries of the forwarding database, one per peer (bridge(8), `fdb append … dst`, head-end
  replication as in the kernel's Documentation/networking/vxlan.rst); replies teach the device where each MAC
  lives (learning).
- VXLAN adds 50 bytes (outer Ethernet 14, IP 20, UDP 8, VXLAN 8: RFC 7348 §5), so the bridge, the device and
  the workloads' interfaces get the underlay's MTU minus 50; bigger frames would be dropped, not fragmented.

- DHCP stays on its node: each node's dnsmasq answers DHCP for its own VMs only, and is authoritative, so it
  would refuse (DHCPNAK) another node's VM renewing a lease it does not know. A bridge-family nftables table
  per network drops DHCP (UDP 67/68) bridged out through the VXLAN device (`dhcp_filter`).

Rendering (`link_commands`, `fdb_commands`, `dhcp_filter`) is pure and unit-tested; `ensure` and `delete`
apply it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network

from isobox.command import run
from isobox.errors import ConflictError, InvalidArgumentError
from isobox.network.bridge import exists

VXLAN_PORT = 4789  # IANA's VXLAN port (RFC 7348 §5)
VXLAN_OVERHEAD = 50
FIRST_VNI = 4096  # below: left to other users of VXLAN on the same underlay
MAX_VNI = (1 << 24) - 1
FLOOD_MAC = "00:00:00:00:00:00"
SLICE_PREFIX = 24  # a node's slice: 254 workloads
MIN_SLICE_PREFIX_GAP = 4  # a subnet is cut in at least 16 slices


@dataclass(frozen=True)
class OverlayLink:
    """The VXLAN side of one node's part of an overlay network."""

    vxlan: str
    bridge: str
    vni: int
    local: str  # this node's underlay address
    mtu: int
    peers: tuple[str, ...] = ()  # the other nodes' underlay addresses


def vxlan_name(network_id: str) -> str:
    return f"ivx-{network_id[:10]}"


def slice_prefix(subnet: IPv4Network) -> int:
    """Slices are /24 where the subnet holds at least 16 of them, else the subnet cut in 16."""
    prefix = max(SLICE_PREFIX, subnet.prefixlen + MIN_SLICE_PREFIX_GAP)
    if prefix > 29:
        raise InvalidArgumentError(
            f"overlay subnet {subnet} is too small: it is cut in a slice per node (use /25 or larger)",
            op="create network")
    return prefix


def slices(subnet: IPv4Network) -> list[IPv4Network]:
    return list(subnet.subnets(new_prefix=slice_prefix(subnet)))


def assign_slices(subnet: IPv4Network, nodes: Iterable[str], taken: Mapping[int, str]) -> dict[str, int]:
    """The slice index of each node: nodes that hold one keep it (``taken``: index → node); each other node,
    in the order given, gets the lowest free index. Slices of nodes not listed are freed. ConflictError when
    the subnet has no slice left."""
    wanted = list(dict.fromkeys(nodes))
    kept: dict[str, int] = {}
    for index, node in sorted(taken.items()):
        if node in wanted:
            kept.setdefault(node, index)  # a node holding two keeps the lowest
    used = set(kept.values())
    free = (i for i in range(len(slices(subnet))) if i not in used)
    result = {}
    for node in wanted:
        if node in kept:
            result[node] = kept[node]
            continue
        chosen = next(free, None)
        if chosen is None:
            raise ConflictError(f"overlay subnet {subnet} has no slice left for node {node}", op="join network",
                                id=node)
        result[node] = chosen
    return result


def slice_of(subnet: IPv4Network, index: int) -> IPv4Network:
    return slices(subnet)[index]


def gateway_of(piece: IPv4Network) -> str:
    return str(piece.network_address + 1)


def pick_vni(taken: Iterable[int]) -> int:
    busy = set(taken)
    for vni in range(FIRST_VNI, MAX_VNI + 1):
        if vni not in busy:
            return vni
    raise ConflictError("no VXLAN id left", op="create network")


def mtu_inside(underlay_mtu: int) -> int:
    return underlay_mtu - VXLAN_OVERHEAD


def link_commands(link: OverlayLink) -> list[str]:
    """`ip -batch` lines that make the VXLAN device and join it to the bridge (pure)."""
    return [
        f"link add {link.vxlan} mtu {link.mtu} type vxlan id {link.vni} local {link.local} dstport {VXLAN_PORT}",
        f"link set {link.bridge} mtu {link.mtu}",
        f"link set {link.vxlan} master {link.bridge} up",
    ]


def filter_table(vxlan: str) -> str:
    return f"isobox-{vxlan}"


def dhcp_filter(vxlan: str) -> str:
    """The `nft -f` script of the network's bridge table: DHCP never leaves the node through VXLAN (pure)."""
    table = filter_table(vxlan)
    return "\n".join([
        f"table bridge {table}",
        f"delete table bridge {table}",
        f"table bridge {table} {{",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        f'\t\toifname "{vxlan}" udp dport {{ 67, 68 }} counter drop comment "dhcp stays on this node"',
        "\t}",
        "}",
    ]) + "\n"


def fdb_commands(vxlan: str, present: Iterable[str], wanted: Iterable[str]) -> list[str]:
    """`bridge -batch` lines that make the flooding entries exactly one per wanted peer (pure)."""
    have, want = set(present), set(wanted)
    lines = [f"fdb append {FLOOD_MAC} dev {vxlan} dst {peer}" for peer in sorted(want - have)]
    lines += [f"fdb del {FLOOD_MAC} dev {vxlan} dst {peer}" for peer in sorted(have - want)]
    return lines


def flood_peers(fdb_json: str) -> list[str]:
    """The peers of the all-zeros entries in `bridge -j fdb show dev VXLAN` (pure)."""
    return sorted({e["dst"] for e in json.loads(fdb_json or "[]") if e.get("mac") == FLOOD_MAC and "dst" in e})


# ---- applying ---------------------------------------------------------------------------------


def ensure(link: OverlayLink) -> None:
    """Make the VXLAN device of ``link`` exist on its bridge, with exactly its peers."""
    if not exists(link.vxlan):
        try:
            run(["ip", "-batch", "-"], input="\n".join(link_commands(link)) + "\n", op="create vxlan", id=link.vxlan)
            run(["nft", "-f", "-"], input=dhcp_filter(link.vxlan), op="filter vxlan dhcp", id=link.vxlan)
        except BaseException:
            delete(link.vxlan)
            raise
    set_peers(link.vxlan, link.peers)


def set_peers(vxlan: str, peers: Iterable[str]) -> None:
    shown = run(["bridge", "-j", "fdb", "show", "dev", vxlan], op="list vxlan peers", id=vxlan)
    lines = fdb_commands(vxlan, flood_peers(shown), peers)
    if lines:
        run(["bridge", "-batch", "-"], input="\n".join(lines) + "\n", op="set vxlan peers", id=vxlan)


def peers(vxlan: str) -> list[str]:
    if not exists(vxlan):
        return []
    return flood_peers(run(["bridge", "-j", "fdb", "show", "dev", vxlan], op="list vxlan peers", id=vxlan))


def delete(vxlan: str) -> None:
    table = filter_table(vxlan)
    # `table …; delete table …`: removes it whether or not it exists (nft(8)), in one transaction.
    run(["nft", "-f", "-"], input=f"table bridge {table}\ndelete table bridge {table}\n", op="delete vxlan filter",
        id=vxlan, check=False)
    if exists(vxlan):
        run(["ip", "link", "delete", vxlan], op="delete vxlan", id=vxlan, check=False)


def underlay_mtu(address: str) -> int:
    """The MTU of the interface that holds ``address`` (the node's underlay address)."""
    text = run(["ip", "-j", "-4", "address", "show"], op="find the underlay interface", id=address)
    for entry in json.loads(text or "[]"):
        if any(a.get("local") == address for a in entry.get("addr_info", [])):
            return int(entry.get("mtu", 1500))
    raise InvalidArgumentError(f"no interface of this host has the address {address}", op="create network",
                               id=address)


def check_address(address: str) -> str:
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError:
        raise InvalidArgumentError(f"invalid node address {address!r}", op="configure cluster") from None
