"""-p parsing, and the /etc/hosts, /etc/resolv.conf and kernel ip= a workload gets from its NetworkPlan."""

from __future__ import annotations

import pytest

from isobox.errors import InvalidArgumentError
from isobox.model.network import (
    InterfacePlan,
    NetworkMode,
    NetworkPlan,
    PortPlan,
    PortSpec,
    Protocol,
    hosts_file,
    resolv_conf,
)

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
    assert bridged == "nameserver 10.88.0.1\nnameserver 10.89.0.1\nsearch corp.example\noptions edns0\n"
    alone = resolv_conf(NetworkPlan(mode=NetworkMode.NONE), HOST_RESOLV)
    assert alone == "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
    hosted = resolv_conf(NetworkPlan(mode=NetworkMode.HOST), HOST_RESOLV)
    assert hosted.startswith("nameserver 127.0.0.53\n")
    assert resolv_conf(None, "") == ""


def test_kernel_ip_argument() -> None:
    assert ETH0.kernel_ip_arg("web") == "ip=10.88.0.2::10.88.0.1:255.255.255.0:web:eth0:off:10.88.0.1"
    assert ETH1.kernel_ip_arg("web", default_route=False) == "ip=10.89.0.5:::255.255.255.0:web:eth1:off:10.89.0.1"
