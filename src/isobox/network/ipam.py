"""Address management as pure functions: subnets from a pool, addresses in a subnet, MACs and interface names.

Nothing here reads the host: the caller passes the subnets already taken (other networks, the host's routes)
and the addresses already allocated (from the database), so every rule is unit-tested without root.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

from isobox.errors import ConflictError, InvalidArgumentError

# Not podman's 10.88.0.0/16 (its default network's bridge covers all of it), Docker's 172.17-31, libvirt's
# 192.168.122 or Kubernetes' usual 10.96/10.244 ranges: the pool must be free on hosts that run those too.
DEFAULT_POOL = "10.199.0.0/16"
DEFAULT_PREFIX = 24
IFNAMSIZ = 15  # interface names are at most 15 bytes (IFNAMSIZ - 1, include/uapi/linux/if.h)
_MAC_PREFIX = (0x02, 0x1B)  # 0x02: a locally administered unicast address (IEEE 802, bit 1 of the first octet)


def parse_subnet(text: str, *, op: str = "parse subnet") -> IPv4Network:
    try:
        subnet = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidArgumentError(f"invalid subnet {text!r}: {exc}", op=op) from None
    if not isinstance(subnet, IPv4Network):
        raise InvalidArgumentError(f"only IPv4 subnets are supported: {text!r}", op=op)
    if subnet.prefixlen > 29:
        raise InvalidArgumentError(f"subnet {text!r} is too small (at most /29)", op=op)
    return subnet


def pool_from_env(environ: dict[str, str] | None = None) -> tuple[IPv4Network, int]:
    """The pool default networks are carved from: ISOBOX_NETWORK_POOL (a CIDR, optionally ',size=N')."""
    env = os.environ if environ is None else environ
    text = env.get("ISOBOX_NETWORK_POOL", DEFAULT_POOL)
    cidr, _, size = text.partition(",size=")
    pool = parse_subnet(cidr, op="parse ISOBOX_NETWORK_POOL")
    prefix = int(size) if size.isdigit() else DEFAULT_PREFIX
    if not pool.prefixlen <= prefix <= 29:
        raise InvalidArgumentError(f"subnet size /{prefix} does not fit pool {pool}", op="parse ISOBOX_NETWORK_POOL")
    return pool, prefix


def pick_subnet(pool: IPv4Network, prefix: int, taken: Iterable[IPv4Network]) -> IPv4Network:
    """The first /prefix of the pool that overlaps nothing taken (Docker's default-address-pools rule)."""
    busy = [t for t in taken if t.overlaps(pool) and t.prefixlen > 0]
    for candidate in pool.subnets(new_prefix=prefix):
        if not any(candidate.overlaps(t) for t in busy):
            return candidate
    raise ConflictError(
        f"no free /{prefix} subnet left in pool {pool} (choose another with ISOBOX_NETWORK_POOL)", op="allocate subnet"
    )


def check_free(subnet: IPv4Network, taken: Iterable[tuple[str, IPv4Network]]) -> None:
    """Refuse a subnet that overlaps another network or a host route (traffic would be routed ambiguously)."""
    for owner, other in taken:
        if other.prefixlen > 0 and subnet.overlaps(other):
            raise ConflictError(f"subnet {subnet} overlaps {other} ({owner})", op="create network")


def gateway_for(subnet: IPv4Network, wanted: str | None = None) -> IPv4Address:
    if wanted is None:
        return subnet.network_address + 1
    address = _address(wanted, "gateway")
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgumentError(f"gateway {wanted} is not a host address of {subnet}", op="create network")
    return address


def allocate(
    subnet: IPv4Network, gateway: IPv4Address, used: Iterable[str], wanted: str | None = None
) -> IPv4Address:
    """The requested address if free, else the lowest free host address (never the gateway)."""
    busy = {ipaddress.IPv4Address(u) for u in used} | {gateway}
    if wanted is not None:
        address = _address(wanted, "--ip")
        if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgumentError(f"address {wanted} is not a host address of {subnet}", op="allocate address")
        if address in busy:
            raise ConflictError(f"address {wanted} is already in use on {subnet}", op="allocate address")
        return address
    for address in subnet.hosts():
        if address not in busy:
            return address
    raise ConflictError(f"no free address left in {subnet}", op="allocate address")


def mac_for(address: IPv4Address) -> str:
    """A MAC derived from the address (as Docker does), so a re-created interface keeps neighbours' ARP valid."""
    octets = (*_MAC_PREFIX, *address.packed)
    return ":".join(f"{o:02x}" for o in octets)


def veth_name(workload_id: str, index: int) -> str:
    return _ifname("iv", workload_id, index)


def tap_name(workload_id: str, index: int) -> str:
    return _ifname("it", workload_id, index)


def bridge_name(network_id: str, *, default: bool, system_root: bool) -> str:
    """isobox0 for the system's default network; ibr-<id> otherwise, so private roots never share a bridge."""
    if default and system_root:
        return "isobox0"
    return f"ibr-{network_id[:10]}"


def table_name(root_key: str | None) -> str:
    """isobox's nftables table: `isobox` for the system state, `isobox-<key>` for a private ISOBOX_ROOT."""
    return "isobox" if root_key is None else f"isobox-{root_key[:8]}"


def _ifname(prefix: str, workload_id: str, index: int) -> str:
    name = f"{prefix}{workload_id[:10]}{index}"
    if len(name) > IFNAMSIZ or index > 9:
        raise InvalidArgumentError(f"too many interfaces for one workload ({index + 1})", op="name interface")
    return name


def _address(text: str, what: str) -> IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidArgumentError(f"invalid {what} address {text!r}", op=f"parse {what}") from None
