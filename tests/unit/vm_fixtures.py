"""Values the VM unit tests share."""

from __future__ import annotations

from isobox.model.network import InterfacePlan

# A VM's NIC on the default network, as the network service plans it.
ETH0 = InterfacePlan(
    network="isobox",
    network_id="n1",
    bridge="ibr-1",
    host_ifname="itap-abc",
    ifname="eth0",
    mac="02:42:0a:58:00:02",
    ip="10.88.0.2",
    prefix_len=24,
    gateway="10.88.0.1",
)
