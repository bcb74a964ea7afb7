"""Containers and VMs on one network: each reaches the other by name over TCP, and a VM's published port
answers on the host's 127.0.0.1. Traffic stays on loopback and on the bridge isobox creates."""

from __future__ import annotations

import time
import urllib.request

import pytest
from tests.fixtures import network as fx
from tests.integration.conftest import Cli

net_cli = fx.net_cli  # fixture

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(240)]


def _get(url: str, deadline_s: float = 60) -> bytes:
    """The VM's httpd needs its boot first: retry until it answers."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return bytes(reply.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_container_and_vm_reach_each_other_by_name(net_cli: Cli) -> None:
    port = fx.free_port()
    net_cli("network", "create", "mixed", check=True)
    net_cli("run", "-d", "--vm", "--name", "vmweb", "--network", "mixed", "-p", f"127.0.0.1:{port}:80",
            "busybox", "sh", "-c", fx.WEB, check=True, timeout=120)
    assert _get(f"http://127.0.0.1:{port}/index.html").startswith(b"hello-from-")
    from_container = net_cli("run", "--rm", "--network", "mixed", "busybox", "wget", "-q", "-O-",
                             "http://vmweb/index.html", check=True)
    assert from_container.stdout.startswith("hello-from-")
    net_cli("run", "-d", "--name", "ctweb", "--network", "mixed", "busybox", "sh", "-c", fx.WEB, check=True)
    from_vm = net_cli("run", "--rm", "--vm", "--network", "mixed", "busybox", "sh", "-c",
                      "for i in 1 2 3 4 5; do wget -q -O- http://ctweb/index.html && exit 0; sleep 1; done; exit 1",
                      check=True, timeout=120)
    assert from_vm.stdout.startswith("hello-from-")
