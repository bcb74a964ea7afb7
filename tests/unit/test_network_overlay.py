"""Overlay networks as pure rules (network/overlay.py): slices per node, VXLAN ids, the `ip` and `bridge` lines
that build the VXLAN side, and the records' new fields read from records written before them."""

from __future__ import annotations

import json
from ipaddress import IPv4Network

import pytest

from isobox.errors import ConflictError, InvalidArgumentError
from isobox.model.cluster import ClusterConfig
from isobox.model.network import NetworkDriver, NetworkRecord
from isobox.network import overlay
from isobox.state import codec

SUBNET = IPv4Network("10.208.0.0/16")


def test_a_subnet_is_cut_in_slices_of_24_or_in_16() -> None:
    assert overlay.slice_prefix(SUBNET) == 24 and len(overlay.slices(SUBNET)) == 256
    assert overlay.slice_prefix(IPv4Network("10.208.0.0/22")) == 26
    assert overlay.slice_of(SUBNET, 3) == IPv4Network("10.208.3.0/24")
    assert overlay.gateway_of(IPv4Network("10.208.3.0/24")) == "10.208.3.1"
    with pytest.raises(InvalidArgumentError, match="too small"):
        overlay.slice_prefix(IPv4Network("10.208.0.0/26"))


def test_new_nodes_take_the_lowest_free_slice_and_holders_keep_theirs() -> None:
    assert overlay.assign_slices(SUBNET, ["a", "b", "c"], {}) == {"a": 0, "b": 1, "c": 2}
    # b left (its slice 1 is free again), d joins: a and c keep theirs, d takes 1.
    assert overlay.assign_slices(SUBNET, ["a", "c", "d"], {0: "a", 1: "b", 2: "c"}) == {"a": 0, "c": 2, "d": 1}
    # Listed order decides among newcomers; a node holding two slices keeps the lowest.
    assert overlay.assign_slices(SUBNET, ["z", "y"], {5: "y", 7: "y"}) == {"z": 0, "y": 5}
    assert overlay.assign_slices(SUBNET, ["a", "a"], {}) == {"a": 0}


def test_a_full_subnet_refuses_another_node() -> None:
    small = IPv4Network("10.208.0.0/25")  # 16 slices of /29
    held = {i: f"n{i}" for i in range(16)}
    assert overlay.assign_slices(small, list(held.values()), held) == {f"n{i}": i for i in range(16)}
    with pytest.raises(ConflictError, match="no slice left for node extra"):
        overlay.assign_slices(small, [*held.values(), "extra"], held)


def test_vxlan_ids_start_above_the_reserved_ones() -> None:
    assert overlay.pick_vni([]) == 4096
    assert overlay.pick_vni([4096, 4098]) == 4097


def test_the_vxlan_device_is_unicast_with_room_for_its_header() -> None:
    link = overlay.OverlayLink("ivx-0123456789", "ibr-0123456789", 4100, "198.18.0.11", overlay.mtu_inside(1500))
    assert link.mtu == 1450
    assert overlay.link_commands(link) == [
        "link add ivx-0123456789 mtu 1450 type vxlan id 4100 local 198.18.0.11 dstport 4789",
        "link set ibr-0123456789 mtu 1450",
        "link set ivx-0123456789 master ibr-0123456789 up",
    ]
    assert "group" not in " ".join(overlay.link_commands(link)), "no multicast group: unicast flooding only"


def test_flooding_entries_follow_the_peers() -> None:
    shown = json.dumps([
        {"mac": "00:00:00:00:00:00", "dst": "198.18.0.12", "flags": []},
        {"mac": "00:00:00:00:00:00", "dst": "198.18.0.13", "flags": []},
        {"mac": "02:1b:0a:d0:01:02", "dst": "198.18.0.12", "flags": []},  # learnt: left alone
        {"mac": "33:33:00:00:00:01", "flags": ["self", "permanent"]},
    ])
    present = overlay.flood_peers(shown)
    assert present == ["198.18.0.12", "198.18.0.13"]
    assert overlay.fdb_commands("ivx-1", present, ["198.18.0.12", "198.18.0.14"]) == [
        "fdb append 00:00:00:00:00:00 dev ivx-1 dst 198.18.0.14",
        "fdb del 00:00:00:00:00:00 dev ivx-1 dst 198.18.0.13",
    ]
    assert overlay.fdb_commands("ivx-1", present, present) == []


def test_records_written_before_drivers_existed_are_bridge_networks() -> None:
    old = '{"id": "abc", "name": "n", "subnet": "10.199.0.0/24", "gateway": "10.199.0.1", "bridge": "ibr-abc"}'
    record = codec.loads(NetworkRecord, old)
    assert record.driver is NetworkDriver.BRIDGE and record.allocation_pool == "10.199.0.0/24" and record.mtu == 0
    part = NetworkRecord("abc", "ov", "10.208.0.0/16", "10.208.3.1", "ibr-abc", driver=NetworkDriver.OVERLAY,
                         vni=4096, pool="10.208.3.0/24", mtu=1450)
    assert codec.loads(NetworkRecord, codec.dumps(part)) == part and part.allocation_pool == "10.208.3.0/24"


def test_a_cluster_configuration_needs_an_endpoint_and_a_valid_node_name() -> None:
    with pytest.raises(InvalidArgumentError, match="at least one etcd endpoint"):
        ClusterConfig((), "n1", "198.18.0.11")
    with pytest.raises(InvalidArgumentError, match="invalid name"):
        ClusterConfig(("http://127.0.0.1:2379",), "bad/name", "198.18.0.11")


def test_dhcp_is_not_bridged_out_through_vxlan() -> None:
    assert overlay.dhcp_filter("ivx-0123456789") == (
        "table bridge isobox-ivx-0123456789\n"
        "delete table bridge isobox-ivx-0123456789\n"
        "table bridge isobox-ivx-0123456789 {\n"
        "\tchain forward {\n"
        "\t\ttype filter hook forward priority filter; policy accept;\n"
        '\t\toifname "ivx-0123456789" udp dport { 67, 68 } counter drop comment "dhcp stays on this node"\n'
        "\t}\n"
        "}\n"
    )
