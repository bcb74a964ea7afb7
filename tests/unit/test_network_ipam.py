"""Address management: subnets from the pool, addresses, MACs and interface names (pure, no root)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from isobox.errors import ConflictError, InvalidArgumentError
from isobox.network import ipam


def test_pick_subnet_skips_taken_and_host_routes() -> None:
    pool = IPv4Network("10.88.0.0/16")
    assert ipam.pick_subnet(pool, 24, []) == IPv4Network("10.88.0.0/24")
    taken = [IPv4Network("10.88.0.0/24"), IPv4Network("10.88.1.128/25"), IPv4Network("0.0.0.0/0")]
    assert ipam.pick_subnet(pool, 24, taken) == IPv4Network("10.88.2.0/24")
    with pytest.raises(ConflictError, match="no free /24"):
        ipam.pick_subnet(IPv4Network("10.88.0.0/23"), 24, [IPv4Network("10.88.0.0/23")])


def test_check_free_names_the_owner() -> None:
    ipam.check_free(IPv4Network("10.89.0.0/24"), [("route via eth0", IPv4Network("192.0.2.0/24"))])
    with pytest.raises(ConflictError, match="route via eth0"):
        ipam.check_free(IPv4Network("192.0.2.0/25"), [("route via eth0", IPv4Network("192.0.2.0/24"))])


def test_allocate_lowest_free_never_gateway_and_requested() -> None:
    subnet = IPv4Network("10.88.0.0/24")
    gateway = IPv4Address("10.88.0.1")
    assert ipam.allocate(subnet, gateway, []) == IPv4Address("10.88.0.2")
    assert ipam.allocate(subnet, gateway, ["10.88.0.2", "10.88.0.4"]) == IPv4Address("10.88.0.3")
    assert ipam.allocate(subnet, gateway, [], "10.88.0.77") == IPv4Address("10.88.0.77")
    with pytest.raises(ConflictError):
        ipam.allocate(subnet, gateway, ["10.88.0.77"], "10.88.0.77")
    with pytest.raises(ConflictError):
        ipam.allocate(subnet, gateway, [], "10.88.0.1")
    for outside in ("10.89.0.5", "10.88.0.255", "10.88.0.0"):
        with pytest.raises(InvalidArgumentError):
            ipam.allocate(subnet, gateway, [], outside)
    full = [str(a) for a in IPv4Network("10.88.0.0/29").hosts()]
    with pytest.raises(ConflictError, match="no free address"):
        ipam.allocate(IPv4Network("10.88.0.0/29"), IPv4Address("10.88.0.1"), full)


def test_gateway_and_subnet_validation() -> None:
    subnet = IPv4Network("10.90.0.0/24")
    assert ipam.gateway_for(subnet) == IPv4Address("10.90.0.1")
    assert ipam.gateway_for(subnet, "10.90.0.254") == IPv4Address("10.90.0.254")
    with pytest.raises(InvalidArgumentError):
        ipam.gateway_for(subnet, "10.91.0.1")
    for bad in ("10.90.0.1/24", "fd00::/64", "10.0.0.0/30", "nonsense"):
        with pytest.raises(InvalidArgumentError):
            ipam.parse_subnet(bad)


def test_pool_from_env() -> None:
    assert ipam.pool_from_env({}) == (IPv4Network("10.199.0.0/16"), 24)
    assert ipam.pool_from_env({"ISOBOX_NETWORK_POOL": "172.30.0.0/16,size=26"}) == (IPv4Network("172.30.0.0/16"), 26)
    with pytest.raises(InvalidArgumentError):
        ipam.pool_from_env({"ISOBOX_NETWORK_POOL": "172.30.0.0/24,size=16"})


def test_mac_and_names() -> None:
    assert ipam.mac_for(IPv4Address("10.88.0.2")) == "02:1b:0a:58:00:02"
    workload = "0123456789abcdef" * 4
    assert ipam.veth_name(workload, 0) == "iv01234567890"
    assert ipam.tap_name(workload, 1) == "it01234567891"
    assert all(len(ipam.veth_name(workload, i)) <= ipam.IFNAMSIZ for i in range(10))
    with pytest.raises(InvalidArgumentError):
        ipam.veth_name(workload, 10)
    assert ipam.bridge_name(workload, default=True, system_root=True) == "isobox0"
    assert ipam.bridge_name(workload, default=True, system_root=False) == "ibr-0123456789"
    assert ipam.table_name(None) == "isobox"
    assert ipam.table_name("deadbeefcafe") == "isobox-deadbeef"
