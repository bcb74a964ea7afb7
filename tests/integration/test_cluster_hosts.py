"""The test hosts themselves (tests/fixtures/cluster.py): they reach each other and etcd and nothing else, each
runs isobox with its own root, and a host whose link is down is cut off from etcd."""

from __future__ import annotations

import pytest
from tests.fixtures.cluster import make_cluster

from isobox.errors import HostError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _reaches(code: str) -> str:
    return f"import socket; s = socket.create_connection({code}, timeout=2); print('ok')"


def test_hosts_reach_each_other_and_etcd_and_run_isobox_apart() -> None:
    with make_cluster(2, etcd_members=1) as cluster:
        one, two = cluster.hosts
        assert cluster.etcd is not None
        assert one.run("busybox", "ping", "-c", "1", "-W", "2", two.address).returncode == 0
        assert one.run("ip", "route", "get", "192.0.2.1").returncode != 0, "test hosts must have no way out"
        endpoint = cluster.etcd_endpoints[0]
        host, port = endpoint.removeprefix("http://").split(":")
        assert one.python(_reaches(f"('{host}', {port})")).stdout.strip() == "ok"
        one.isobox("run", "-d", "--name", "web", "busybox", "sleep", "300", check=True)
        two.isobox("run", "-d", "--name", "web", "busybox", "sleep", "300", check=True)  # same name: other root
        assert one.isobox("ps", "-q").stdout.split() != two.isobox("ps", "-q").stdout.split()
        # Each host sees its own isobox bridge only, and its own default network in its own namespace.
        assert one.run("ip", "-o", "link", "show", "type", "bridge").stdout.count("ibr-") + \
            one.run("ip", "-o", "link", "show", "type", "bridge").stdout.count("isobox0") == 1
        assert one.isobox("exec", "web", "true").returncode == 0


def test_a_host_whose_link_is_down_is_cut_off_from_etcd() -> None:
    with make_cluster(2, etcd_members=3) as cluster:
        one, two = cluster.hosts
        probe = (
            "import sys\n"
            "from isobox.state.etcd import EtcdKV\n"
            f"kv = EtcdKV({cluster.etcd_endpoints!r}, timeout_s=1, retry_s=1)\n"
            "try:\n    kv.put('probe', 'x'); print('reached')\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
        )
        assert one.python(probe).stdout.strip() == "reached"
        one.link_down()
        try:
            answer = one.python(probe).stdout.strip()
            assert answer.startswith(HostError.__name__)
            assert all(endpoint in answer for endpoint in cluster.etcd_endpoints), answer
            assert two.python(probe).stdout.strip() == "reached"
            assert one.run("busybox", "ping", "-c", "1", "-W", "1", two.address).returncode != 0
        finally:
            one.link_up()
        assert one.python(probe).stdout.strip() == "reached"
