"""`isobox network connect|disconnect`: a running container gets (and loses) an interface at once, with its DNS
names; a stopped VM gets the NIC at its next boot; a running VM is refused with what to do."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


def test_a_running_container_joins_and_leaves(cli: object) -> None:
    cli("network", "create", "joined", check=True)  # type: ignore[operator]
    cli("run", "-d", "--name", "peer", "--network", "joined", "busybox", "sleep", "300", check=True)  # type: ignore[operator]
    cli("run", "-d", "--name", "mover", "busybox", "sleep", "300", check=True)  # type: ignore[operator]
    cli("network", "connect", "--alias", "mover-alias", "joined", "mover", check=True)  # type: ignore[operator]
    shown = cli("exec", "mover", "sh", "-c", "ip -4 -o addr; ping -c1 -W3 peer", check=True).stdout  # type: ignore[operator]
    assert " eth1 " in shown and "1 packets received" in shown
    resolved = cli("exec", "peer", "nslookup", "mover-alias", check=True).stdout  # type: ignore[operator]
    assert "Address" in resolved.split("mover-alias")[-1]
    again = cli("network", "connect", "joined", "mover")  # type: ignore[operator]
    assert again.returncode != 0 and "already on network joined" in again.stderr
    cli("network", "disconnect", "joined", "mover", check=True)  # type: ignore[operator]
    assert " eth1 " not in cli("exec", "mover", "ip", "-4", "-o", "addr", check=True).stdout  # type: ignore[operator]
    cli("rm", "-f", "mover", "peer", check=True)  # type: ignore[operator]
    cli("network", "rm", "joined", check=True)  # type: ignore[operator]


@pytest.mark.vm
def test_a_vm_joins_while_stopped(cli: object) -> None:
    cli("network", "create", "vmjoin", check=True)  # type: ignore[operator]
    cli("create", "--vm", "--name", "guest", "busybox", "sh", "-c", "ip -4 -o addr; sleep 300",  # type: ignore[operator]
        check=True, timeout=180)
    cli("network", "connect", "vmjoin", "guest", check=True)  # type: ignore[operator]
    cli("start", "guest", check=True, timeout=180)  # type: ignore[operator]
    deadline = time.monotonic() + 90
    logs = ""
    while "eth1" not in logs and time.monotonic() < deadline:
        time.sleep(1)
        logs = cli("logs", "guest").stdout  # type: ignore[operator]
    assert " eth0 " in logs and " eth1 " in logs
    refused = cli("network", "disconnect", "vmjoin", "guest")  # type: ignore[operator]
    assert refused.returncode != 0 and "stop it" in refused.stderr
    cli("rm", "-f", "guest", check=True, timeout=120)  # type: ignore[operator]
    cli("network", "rm", "vmjoin", check=True)  # type: ignore[operator]
