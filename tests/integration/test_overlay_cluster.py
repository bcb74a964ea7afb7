"""Overlay networks across two test hosts (tests/fixtures/cluster.py) with etcd as the cluster's store: a container
on each host, reaching the other by address and by name (ping, and HTTP over TCP with a payload far above one
MTU), each node on its own slice, and nothing left on either host or in the store after `network rm`."""

from __future__ import annotations

import json

import pytest
from tests.fixtures.cluster import TestCluster, TestHost, make_cluster

from isobox.state.etcd import EtcdKV

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Serves its own name, and 300 KB of zeros (many full-size segments: an MTU left too large would stall them).
WEB = ("echo hello-from-$(hostname) > /tmp/index.html; dd if=/dev/zero of=/tmp/big bs=1k count=300 2>/dev/null; "
       "exec httpd -f -p 80 -h /tmp")
SUBNET = "10.208.0.0/16"


def _join(cluster: TestCluster, host: TestHost) -> None:
    host.python(
        "from isobox.service import cluster\n"
        "from isobox.service.context import open_context\n"
        f"cluster.join(open_context(), {cluster.etcd_endpoints!r}, {host.name!r}, {host.address!r})\n"
    )


def _sync(host: TestHost) -> None:
    """What the node agent does periodically (it comes with services)."""
    host.python("from isobox.service import networks\n"
                "from isobox.service.context import open_context\n"
                "networks.sync_overlays(open_context())\n")


def _inspect(host: TestHost, name: str) -> dict[str, object]:
    found = json.loads(host.isobox("network", "inspect", name, check=True).stdout)
    assert isinstance(found, list)
    return dict(found[0])


def _links(host: TestHost) -> list[str]:
    return [line.split(":")[1].strip().split("@")[0] for line in host.run("ip", "-o", "link").stdout.splitlines()]


def test_containers_on_two_hosts_reach_each_other_by_address_and_name() -> None:
    with make_cluster(2, etcd_members=1) as cluster:
        one, two = cluster.hosts
        for host in cluster.hosts:
            _join(cluster, host)
        one.isobox("network", "create", "--driver", "overlay", "--subnet", SUBNET, "ov", check=True)
        one.isobox("run", "-d", "--name", "alpha", "--hostname", "alpha", "--network", "ov", "busybox", "sh", "-c", WEB,
                   check=True)
        # The second node has no part of "ov" until a workload names it: then it takes a slice of its own.
        two.isobox("run", "-d", "--name", "beta", "--hostname", "beta", "--network", "ov", "busybox", "sh", "-c", WEB,
                   check=True)
        _sync(one)

        first, second = _inspect(one, "ov"), _inspect(two, "ov")
        assert first["Id"] == second["Id"] and first["Driver"] == second["Driver"] == "overlay"
        own_one, own_two = dict(first["Isobox"]), dict(second["Isobox"])  # type: ignore[call-overload]
        overlay_one, overlay_two = dict(own_one["overlay"]), dict(own_two["overlay"])
        assert overlay_one["vni"] == overlay_two["vni"] and overlay_one["slice"] != overlay_two["slice"]
        assert overlay_one["peers"] == [two.address] and overlay_two["peers"] == [one.address]
        assert f"table bridge isobox-{overlay_one['vxlan']}" in one.run("nft", "list", "tables").stdout
        alpha_ip = own_one["endpoints"][0]["ip"]
        beta_ip = own_two["endpoints"][0]["ip"]
        assert alpha_ip.startswith("10.208.0.") and beta_ip.startswith("10.208.1.")

        assert one.isobox("exec", "alpha", "ping", "-c", "2", "-W", "3", beta_ip).returncode == 0
        assert two.isobox("exec", "beta", "ping", "-c", "2", "-W", "3", alpha_ip).returncode == 0
        by_name = one.isobox("exec", "alpha", "wget", "-qO-", "http://beta/", check=True)
        assert by_name.stdout.strip() == "hello-from-beta"
        back = two.isobox("exec", "beta", "wget", "-qO-", "http://alpha.ov.isobox.internal/", check=True)
        assert back.stdout.strip() == "hello-from-alpha"
        size = two.isobox("exec", "beta", "sh", "-c", f"wget -qO- http://{alpha_ip}/big | wc -c", check=True)
        assert size.stdout.strip() == str(300 * 1024)

        for host, name in ((one, "alpha"), (two, "beta")):
            host.isobox("rm", "-f", name, check=True)
            host.isobox("network", "rm", "ov", check=True)
            assert not [n for n in _links(host) if n.startswith(("ivx-", "ibr-", "iv"))], _links(host)
            assert "isobox" not in host.run("nft", "list", "tables").stdout
        with EtcdKV(cluster.etcd_endpoints) as kv:
            assert [e.key for e in kv.items("")] == ["nodes/h1", "nodes/h2"]


def test_overlay_refusals_leave_nothing() -> None:
    with make_cluster(1, etcd_members=1) as cluster:
        (one,) = cluster.hosts
        _join(cluster, one)
        bad = one.isobox("network", "create", "--driver", "vlan", "x")
        assert bad.returncode != 0 and "unknown network driver 'vlan'" in bad.stderr
        small = one.isobox("network", "create", "--driver", "overlay", "--subnet", "10.208.0.0/27", "x")
        assert small.returncode != 0 and "too small" in small.stderr
        gateway = one.isobox("network", "create", "--driver", "overlay", "--subnet", SUBNET, "--gateway",
                             "10.208.0.1", "x")
        assert gateway.returncode != 0 and "gateway per node" in gateway.stderr
        one.isobox("network", "create", "--driver", "overlay", "--subnet", SUBNET, "x", check=True)
        again = one.isobox("network", "create", "--driver", "overlay", "x")
        assert again.returncode != 0 and "already exists" in again.stderr
        overlap = one.isobox("network", "create", "--driver", "overlay", "--subnet", "10.208.0.0/20", "y")
        assert overlap.returncode != 0 and "overlaps" in overlap.stderr
        one.isobox("network", "rm", "x", check=True)
        with EtcdKV(cluster.etcd_endpoints) as kv:
            assert [e.key for e in kv.items("")] == ["nodes/h1"]
        assert not [n for n in _links(one) if n.startswith(("ivx-", "ibr-"))]
