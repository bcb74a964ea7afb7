"""-p parsing, and the /etc/hosts, /etc/resolv.conf and kernel ip= a workload gets from its NetworkPlan."""

from __future__ import annotations

import pytest

from isobox.errors import InvalidArgumentError
from isobox.model.network import (
    Endpoint,
    InterfacePlan,
    NetworkMode,
    NetworkPlan,
    PortPlan,
    PortSpec,
    Protocol,
    hosts_file,
    network_domain,
    resolv_conf,
)
from isobox.service.context import Context

ETH0 = InterfacePlan("isobox", "n1", "isobox0", "iv0", "eth0", "02:1b:0a:58:00:02", "10.88.0.2", 24, "10.88.0.1",
                     ("10.88.0.1",))
ETH1 = InterfacePlan("back", "n2", "ibr-2", "iv1", "eth1", "02:1b:0a:59:00:05", "10.89.0.5", 24, "10.89.0.1",
                     ("10.89.0.1",))
HOST_RESOLV = "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80", PortSpec(80)),
        ("8080:80", PortSpec(80, 8080)),
        ("127.0.0.1:8080:80/udp", PortSpec(80, 8080, "127.0.0.1", Protocol.UDP)),
        ("127.0.0.1::80", PortSpec(80, 0, "127.0.0.1")),
        ("53/UDP", PortSpec(53, 0, "", Protocol.UDP)),
    ],
)
def test_parse_publish(text: str, expected: PortSpec) -> None:
    assert PortSpec.parse(text) == expected


@pytest.mark.parametrize("text", ["", "x", "0", "70000", "1:70000", "1:2:3:4", "a.b:1:2", "[::1]:1:2", "80/sctp"])
def test_parse_publish_rejects(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="parse --publish"):
        PortSpec.parse(text)


def test_port_plan_text() -> None:
    assert str(PortPlan(8080, 80, "10.88.0.2")) == "0.0.0.0:8080->80/tcp"


def test_hosts_file() -> None:
    assert hosts_file(NetworkPlan(interfaces=(ETH0, ETH1)), "web") == (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.88.0.2\tweb\n10.89.0.5\tweb\n"
    )
    assert hosts_file(None, "web").endswith("127.0.1.1\tweb\n")
    assert hosts_file(NetworkPlan(mode=NetworkMode.HOST), "web", "127.0.0.1 myhost") == "127.0.0.1 myhost\n"


def test_resolv_conf() -> None:
    bridged = resolv_conf(NetworkPlan(interfaces=(ETH0, ETH1)), HOST_RESOLV)
    # One server, the first network's (it forwards the others' domains); every network's domain searched.
    assert bridged == (
        "nameserver 10.88.0.1\nsearch isobox.isobox.internal back.isobox.internal corp.example\noptions edns0\n"
    )
    alone = resolv_conf(NetworkPlan(mode=NetworkMode.NONE), HOST_RESOLV)
    assert alone == "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
    hosted = resolv_conf(NetworkPlan(mode=NetworkMode.HOST), HOST_RESOLV)
    assert hosted.startswith("nameserver 127.0.0.53\n")
    assert resolv_conf(None, "") == ""


def test_network_domain() -> None:
    assert network_domain("backend-2", "ab" * 32) == "backend-2.isobox.internal"
    # Not a DNS label (upper case, '_', '.', too long): the id stands in.
    for name in ("Backend", "my_net", "a.b", "x" * 64, "-x"):
        assert network_domain(name, "ab" * 32) == "nabababababab.isobox.internal"


def test_kernel_ip_argument() -> None:
    assert ETH0.kernel_ip_arg("web") == "ip=10.88.0.2::10.88.0.1:255.255.255.0:web:eth0:off:10.88.0.1"
    assert ETH1.kernel_ip_arg("web", default_route=False) == "ip=10.89.0.5:::255.255.255.0:web:eth1:off:10.89.0.1"


def test_forwards_follow_the_workloads_whose_first_network_it_is(ctx: Context) -> None:
    """A network's dnsmasq forwards the domains of the other networks of the workloads that ask it."""
    from dataclasses import replace

    from isobox.model.network import NetworkRecord
    from isobox.service import network_state as state

    red = NetworkRecord("r" * 64, "red", "10.250.1.0/24", "10.250.1.1", "ibr-r")
    blue = NetworkRecord("b" * 64, "blue", "10.250.2.0/24", "10.250.2.1", "ibr-b")
    for network in (red, blue):
        ctx.records.networks.insert(network)

    def on(network: NetworkRecord, ifname: str, ip: str) -> InterfacePlan:
        return replace(ETH0, network=network.name, network_id=network.id, ifname=ifname, ip=ip,
                       gateway=network.gateway, dns=(network.gateway,))

    state.insert_endpoint(ctx, Endpoint("w", "both", on(red, "eth0", "10.250.1.5")))
    state.insert_endpoint(ctx, Endpoint("w", "both", on(blue, "eth1", "10.250.2.5")))
    state.insert_endpoint(ctx, Endpoint("x", "blue-only", on(blue, "eth0", "10.250.2.6")))
    assert state.forwards(ctx, red) == [("blue.isobox.internal", "10.250.2.1")]
    assert state.forwards(ctx, blue) == [], "blue's own workloads ask blue, which has nothing to forward"
    state.delete_endpoints(ctx, "w")
    assert state.forwards(ctx, red) == []
    state.delete_endpoints(ctx, "x")
    ctx.db.query("DELETE FROM networks")  # records only: no bridge or dnsmasq of theirs exists to take down
