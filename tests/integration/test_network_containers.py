"""Container networking end to end: names, published ports, a second host, NAT, isolation, cleanup.

All traffic stays on loopback, on the bridges isobox creates and on a veth into a namespace this module
creates (198.51.100.0/30, TEST-NET-2, RFC 5737): nothing is sent beyond the machine.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from tests.fixtures import network as fx
from tests.integration.conftest import Cli

net_cli = fx.net_cli  # fixtures, shared with the other network test module
second_host = fx.second_host

pytestmark = pytest.mark.integration


def test_by_name_alias_and_published_port_on_localhost(net_cli: Cli) -> None:
    port = fx.free_port()
    net_cli("network", "create", "appnet", check=True)
    net_cli("run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "www",
            "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", fx.WEB, check=True)
    client = net_cli("run", "--rm", "--network", "appnet", "busybox", "sh", "-c",
                     "wget -q -O- http://web/index.html && wget -q -O- http://www/index.html", check=True)
    assert client.stdout.count("hello-from-") == 2
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as reply:
        assert reply.read().startswith(b"hello-from-")
    # Raw TCP by name, both directions of a stream (busybox nc).
    net_cli("run", "-d", "--name", "echo", "--network", "appnet", "busybox", "sh", "-c",
            "echo pong | nc -l -p 7000", check=True)
    done = net_cli("run", "--rm", "--network", "appnet", "busybox", "sh", "-c",
                   "for i in 1 2 3 4 5 6 7 8 9 10; do echo ping | nc echo 7000 && exit 0; sleep 0.2; done; exit 1",
                   check=True)
    assert "pong" in done.stdout


def test_second_host_reaches_published_port_and_nat_masquerades(net_cli: Cli, second_host: fx.SecondHost) -> None:
    port = fx.free_port()
    net_cli("run", "-d", "--name", "pub", "-p", f"{port}:80", "busybox", "sh", "-c", fx.WEB, check=True)
    # Outbound: a container connects to the "other host"; it must see the host's link address, not the container's.
    server = subprocess.Popen(
        ["ip", "netns", "exec", second_host.netns, "python3", "-c",
         "import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
         f"s.bind(('{fx.PEER_IP}', 8081)); s.listen(); c, a = s.accept(); print(a[0], flush=True); c.sendall(b'hi')"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        # Detached and kept until the counters are read: any workload change re-renders (and resets) the table.
        net_cli("run", "-d", "--name", "client", "busybox", "sh", "-c",
                f"for i in 1 2 3 4 5 6 7 8 9 10; do nc {fx.PEER_IP} 8081 </dev/null && exit 0; sleep 0.2; done",
                check=True)
        assert net_cli("wait", "client", check=True).stdout.strip() == "0"
        out = net_cli("logs", "client", check=True)
        seen, _ = server.communicate(timeout=10)
    finally:
        server.kill()
        server.wait()
    assert "hi" in out.stdout
    assert seen.strip() == fx.HOST_IP
    # Inbound: the other host reaches the published port on the host's address of its link.
    fetched = fx.sh("ip", "netns", "exec", second_host.netns, "busybox", "timeout", "5", "busybox", "wget", "-q", "-O-",
                  f"http://{fx.HOST_IP}:{port}/index.html")
    assert fetched.stdout.startswith("hello-from-")
    bridge = next(str(n["bridge"]) for n in fx.networks(net_cli) if n["name"] == "isobox")
    counters = fx.counters(fx.table_of(net_cli))
    assert counters[f"masquerade {bridge}"] >= 1
    assert counters[f"publish 0.0.0.0:{port}->80/tcp"] >= 1
    # Hairpin: a workload reaching a published port through a host address (the gateway) gets its answer.
    gateway = next(str(n["gateway"]) for n in fx.networks(net_cli) if n["name"] == "isobox")
    hairpin = net_cli("run", "--rm", "busybox", "wget", "-q", "-O-", f"http://{gateway}:{port}/index.html", check=True)
    assert hairpin.stdout.startswith("hello-from-")


def test_networks_are_isolated_and_multi_homed(net_cli: Cli) -> None:
    net_cli("network", "create", "--subnet", "10.250.1.0/24", "red", check=True)
    net_cli("network", "create", "--subnet", "10.250.2.0/24", "blue", check=True)
    net_cli("run", "-d", "--name", "redweb", "--network", "red", "--ip", "10.250.1.50", "busybox", "sh", "-c", fx.WEB,
            check=True)
    # (busybox 1.35's `wget -T` crashes; `timeout` bounds the attempt instead.)
    blocked = net_cli("run", "--rm", "--network", "blue", "busybox", "sh", "-c",
                      "timeout 2 wget -q -O- http://10.250.1.50/index.html; exit $?")  # not exec'd: pid 1 ignores TERM
    assert blocked.returncode != 0
    net_cli("run", "-d", "--name", "blueweb", "--network", "blue", "busybox", "sh", "-c", fx.WEB, check=True)
    # A workload on both networks resolves the names of each (its first network's dnsmasq forwards the
    # other's domain), as in Docker; one on red only does not see blue's names.
    both = net_cli("run", "--rm", "--network", "red", "--network", "blue", "busybox", "sh", "-c",
                   "ip -o -4 addr show; timeout 5 wget -q -O- http://redweb/index.html; "
                   "timeout 5 wget -q -O- http://blueweb/index.html; cat /etc/resolv.conf", check=True)
    assert "10.250.2." in both.stdout and "10.250.1." in both.stdout
    assert "hello-from-" in both.stdout and both.stdout.count("hello-from-") == 2, both.stdout
    assert "search red.isobox.internal blue.isobox.internal" in both.stdout
    red_only = net_cli("run", "--rm", "--network", "red", "busybox", "nslookup", "blueweb")
    assert red_only.returncode != 0
    assert net_cli("run", "--rm", "--network", "red", "busybox", "nslookup", "redweb", check=True).returncode == 0
    busy = net_cli("network", "rm", "red")
    assert busy.returncode != 0 and "in use" in busy.stderr


def test_network_none_and_host(net_cli: Cli) -> None:
    alone = net_cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link", check=True)
    assert [line.split(":")[1].strip() for line in alone.stdout.splitlines()] == ["lo"]
    hosted = net_cli("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link", check=True)
    host_links = {line.split(":")[1].strip().split("@")[0] for line in fx.sh("ip", "-o", "link").stdout.splitlines()}
    assert {line.split(":")[1].strip().split("@")[0] for line in hosted.stdout.splitlines()} & host_links - {"lo"}
    assert not fx.networks(net_cli) or not any(n["up"] for n in fx.networks(net_cli))


def test_failed_create_leaves_nothing(net_cli: Cli) -> None:
    # The network is set up first, then the driver refuses the working directory: everything is rolled back.
    failed = net_cli("run", "--name", "bad", "-p", f"{fx.free_port()}:80", "-w", "/proc/x", "busybox", "true")
    assert failed.returncode != 0 and "/proc" in failed.stderr
    assert net_cli("ps", "-a", "-q").stdout.strip() == ""
    assert fx.table_of(net_cli) not in fx.sh("nft", "list", "tables").stdout
    assert not any(n["up"] for n in fx.networks(net_cli))


def test_default_network_stays_up_until_pruned(net_cli: Cli) -> None:
    """Like docker0: the default bridge and its DNS outlive the last workload; `network prune` takes them."""
    net_cli("create", "--name", "later", "busybox", "true", check=True)
    # Created, not started: the address is allocated, the namespace and veth come with the first start.
    assert not list((net_cli.root / "run" / "netns").glob("*"))
    assert net_cli("start", "-a", "later", check=True).returncode == 0
    host_end = f"iv{next(iter(net_cli.seen))[:10]}0"
    net_cli("rm", "later", check=True)
    default = fx.networks(net_cli)[0]
    assert default["up"] and default["dns"] and default["endpoints"] == []
    assert fx.table_of(net_cli) in fx.sh("nft", "list", "tables").stdout
    # The veth went with its namespace (freed by the kernel asynchronously, moments after `rm`).
    assert fx.links_gone([host_end])
    assert "Removed 0 workloads, 1 networks" in net_cli("system", "prune", "-f", check=True).stdout
    assert fx.networks(net_cli) == []
    assert str(default["bridge"]) not in fx.sh("ip", "-o", "link").stdout
    assert fx.table_of(net_cli) not in fx.sh("nft", "list", "tables").stdout


def test_interfaces_made_during_runtime_create_fail_cleanly(net_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The veths are made while runc creates the container. If that fails, the created container is
    deleted before its process ever ran, the start fails with the reason, and a later start works."""
    from isobox.errors import HostError
    from isobox.network import attach
    from isobox.service import workloads
    from isobox.service.context import open_context

    net_cli("create", "--name", "clash", "busybox", "true", check=True)
    workload = next(iter(net_cli.seen))

    def refuse(*args: object, **kwargs: object) -> None:
        raise HostError("no veth today", op="create veth")

    monkeypatch.setattr(attach, "add_veth", refuse)
    ctx = open_context(net_cli.root)
    try:
        with pytest.raises(HostError, match="no veth today"):
            workloads.start(ctx, "clash")
    finally:
        ctx.close()
    assert workload not in fx.sh("runc", "--root", str(net_cli.root / "run" / "oci"), "list", "-q").stdout
    assert net_cli("inspect", "clash", check=True).stdout.count('"Status": "created"') == 1
    monkeypatch.undo()
    assert net_cli("start", "-a", "clash").returncode == 0


def test_a_dnsmasq_with_other_options_is_replaced(net_cli: Cli) -> None:
    """A network's dnsmasq left running by an earlier isobox (other options: SIGHUP would not change
    them) is replaced at the next change, so the names and domains of today's options work."""
    from isobox.network import dns
    from isobox.service import networks
    from isobox.service.context import open_context

    net_cli("network", "create", "olddns", check=True)
    ctx = open_context(net_cli.root)
    try:
        record = networks.get(ctx, "olddns")
    finally:
        ctx.close()
    pid_file = dns.state_dir(record) / "dnsmasq.pid"
    old = dns.dnsmasq_argv(record, dns.state_dir(record))
    os.kill(int(pid_file.read_text()), signal.SIGTERM)
    time.sleep(0.3)
    fx.sh(*[arg for arg in old if arg != "--expand-hosts"])  # as an earlier version started it
    before = int(pid_file.read_text())
    net_cli("run", "-d", "--name", "named", "--network", "olddns", "busybox", "sleep", "60", check=True)
    after = int(pid_file.read_text())
    assert after != before and "--expand-hosts" in Path(f"/proc/{after}/cmdline").read_text()
    looked_up = net_cli("run", "--rm", "--network", "olddns", "busybox", "nslookup", "named.olddns.isobox.internal")
    assert looked_up.returncode == 0, looked_up.stdout + looked_up.stderr


def test_restart_and_recovery_after_host_reboot(net_cli: Cli) -> None:
    """Stopped workloads keep their address; after a reboot (simulated: isobox's namespace, bridge and
    dnsmasq gone) `start` re-creates them, with the same address and name."""
    from isobox.network import bridge, dns, netns
    from isobox.service import networks
    from isobox.service.context import open_context

    port = fx.free_port()
    net_cli("run", "-d", "--name", "srv", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", fx.WEB, check=True)
    net_cli("stop", "-t", "1", "srv", check=True)
    ctx = open_context(net_cli.root)
    try:
        record = networks.get(ctx, "isobox")
        before = networks.inspect(ctx, "isobox")["endpoints"]
        netns.remove(next((net_cli.root / "run" / "netns").iterdir()))
        dns.stop(record)
        bridge.delete(record.bridge)
        fx.sh("nft", "delete", "table", "inet", networks.table_name(ctx))
    finally:
        ctx.close()
    net_cli("start", "srv", check=True)
    assert fx.networks(net_cli)[0]["endpoints"] == before
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as reply:
        assert reply.read().startswith(b"hello-from-")
    fetched = net_cli("run", "--rm", "busybox", "wget", "-q", "-O-", "http://srv/index.html", check=True)
    assert fetched.stdout.startswith("hello-from-")


def test_vm_address_by_dhcp(net_cli: Cli) -> None:
    """A VM from an arbitrary image asks DHCP: dnsmasq leases it exactly the address isobox allocated.
    The VM's TAP has no carrier until QEMU opens it; a veth with the VM's MAC stands in for its NIC."""
    net_cli("create", "--vm", "--name", "vmd", "busybox", "true", check=True, timeout=120)
    network = fx.networks(net_cli)[0]
    endpoint = network["endpoints"][0]  # type: ignore[index]
    tag = secrets.token_hex(3)
    stand_in = fx.SecondHost(netns=f"ibtest-{tag}", host_if=f"ibt{tag}d")
    fx.sh("ip", "netns", "add", stand_in.netns)
    try:
        fx.sh("ip", "link", "add", stand_in.host_if, "type", "veth", "peer", "name", "eth0",
              "address", endpoint["mac"], "netns", stand_in.netns)
        fx.sh("ip", "link", "set", stand_in.host_if, "master", str(network["bridge"]), "up")
        fx.sh("ip", "-n", stand_in.netns, "link", "set", "eth0", "up")
        lease = fx.sh("ip", "netns", "exec", stand_in.netns, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f",
                      "-s", "/bin/true", timeout=30)
    finally:
        fx.sh("ip", "link", "delete", stand_in.host_if, check=False)
        fx.sh("ip", "netns", "delete", stand_in.netns, check=False)
    assert f"lease of {endpoint['ip']} obtained from {network['gateway']}" in lease.stdout + lease.stderr
