"""Published ports and network modes: choices and refusals made before any rule or interface exists."""

from __future__ import annotations

import socket

import pytest

from isobox.errors import ConflictError, InvalidArgumentError
from isobox.model.network import NetworkMode, PortPlan, PortSpec, Protocol
from isobox.model.spec import Kind, WorkloadSpec
from isobox.network import ports
from isobox.service.context import Context
from isobox.service.networks import _mode


def test_explicit_and_chosen_ports() -> None:
    plans = ports.resolve([PortSpec(80, 0, "127.0.0.1"), PortSpec(53, 0, "127.0.0.1", Protocol.UDP)], [], "10.88.0.2")
    assert [(p.container_port, p.protocol) for p in plans] == [(80, Protocol.TCP), (53, Protocol.UDP)]
    assert all(1024 <= p.host_port <= 65535 and p.container_ip == "10.88.0.2" for p in plans)


def test_port_published_twice_is_refused() -> None:
    published = [PortPlan(18080, 80, "10.88.0.2")]
    with pytest.raises(ConflictError, match="already published"):
        ports.resolve([PortSpec(80, 18080, "127.0.0.1")], published, "10.88.0.3")
    # Same number, other protocol: fine.
    assert ports.resolve([PortSpec(80, 18080, "127.0.0.1", Protocol.UDP)], published, "10.88.0.3")


def test_port_bound_by_a_host_process_is_refused() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        with pytest.raises(ConflictError, match="in use on the host"):
            ports.resolve([PortSpec(80, busy, "127.0.0.1")], [], "10.88.0.2")


def test_modes() -> None:
    assert _mode(("isobox",), WorkloadSpec("busybox")) is NetworkMode.BRIDGE
    assert _mode(("none",), WorkloadSpec("busybox")) is NetworkMode.NONE
    assert _mode(("host",), WorkloadSpec("busybox")) is NetworkMode.HOST
    with pytest.raises(InvalidArgumentError, match="combined"):
        _mode(("host", "isobox"), WorkloadSpec("busybox"))
    with pytest.raises(InvalidArgumentError, match="takes no -p"):
        _mode(("none",), WorkloadSpec("busybox", publish=(PortSpec(80),)))
    with pytest.raises(InvalidArgumentError, match="VM"):
        _mode(("host",), WorkloadSpec("busybox", kind=Kind.VM))


def test_run_flags_to_spec() -> None:
    from isobox.cli.spec_flags import RunFlags, build_spec

    flags = RunFlags(network=["front", "back"], publish=["127.0.0.1:8080:80", "53/udp"], publish_all=True,
                     ip="10.89.0.9", network_alias=["www"])
    spec = build_spec("busybox", [], flags)
    assert spec.networks == ("front", "back")
    assert spec.publish == (PortSpec(80, 8080, "127.0.0.1"), PortSpec(53, 0, "", Protocol.UDP))
    assert (spec.publish_all, spec.ip, spec.network_aliases) == (True, "10.89.0.9", ("www",))
    assert build_spec("busybox", [], RunFlags()).networks == ()


def test_publish_all_adds_exposed_ports(ctx: Context) -> None:
    from isobox.service.networks import _ports

    spec = WorkloadSpec("busybox", publish=(PortSpec(80, 0, "127.0.0.1"),), publish_all=True)
    plans = _ports(ctx, spec, ("80/tcp", "53/udp", "8443/tcp"), "10.199.0.2")
    assert sorted((p.container_port, p.protocol.value) for p in plans) == [(53, "udp"), (80, "tcp"), (8443, "tcp")]
    assert next(p for p in plans if p.container_port == 80).host_ip == "127.0.0.1"  # -p wins over -P
    assert len({p.host_port for p in plans}) == 3
