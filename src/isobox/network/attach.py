"""Joining a bridge: a veth pair whose far end lives in the container's namespace, or a TAP for a VM.

Containers: `ip link add iv… type veth peer name eth0 address MAC netns FILE` creates both ends at
once with the inner end already in the namespace (ip-link(8): the peer takes the options of `link add`),
so no half-configured interface is ever visible on the host. The inner end is then addressed from
inside the namespace through nsenter.

VMs: a persistent TAP (`ip tuntap add mode tap`, ip-tuntap(8)) enslaved to the bridge; QEMU opens it by
name (`-netdev tap,ifname=…,script=no,downscript=no`), and the guest's virtio-net NIC carries the MAC.
"""

from __future__ import annotations

from pathlib import Path

from isobox.command import run
from isobox.model.network import InterfacePlan
from isobox.network import netns
from isobox.network.bridge import exists


def add_veth(interface: InterfacePlan, namespace: Path, *, default_route: bool, workload: str = "") -> None:
    """Create the pair, enslave the host end, configure the inner end; nothing is left on failure."""
    host = interface.host_ifname
    mtu = f" mtu {interface.mtu}" if interface.mtu else ""  # both ends: an overlay's bridge carries less than 1500
    commands = [
        f"link add {host}{mtu} type veth peer name {interface.ifname} address {interface.mac}{mtu} netns {namespace}",
        f"link set {host} master {interface.bridge} up",
    ]
    try:
        # One `ip -batch`: it stops at the first failing line, and the except below removes a half-made pair.
        run(["ip", "-batch", "-"], input="\n".join(commands) + "\n", op="create veth", id=host)
        netns.ip_batch(namespace, inner_commands(interface, default_route=default_route),
                       op="configure container interface", id=workload or host)
    except BaseException:
        delete_link(host)
        raise


def inner_commands(interface: InterfacePlan, *, default_route: bool) -> list[str]:
    """`ip -batch` lines that configure the namespace's end (pure, unit-tested)."""
    commands = [
        "link set lo up",
        f"address add {interface.ip}/{interface.prefix_len} dev {interface.ifname}",
        f"link set {interface.ifname} up",
    ]
    if default_route:
        commands.append(f"route add default via {interface.gateway} dev {interface.ifname}")
    return commands


def add_tap(interface: InterfacePlan) -> None:
    tap = interface.host_ifname
    run(["ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"], op="create tap", id=tap)
    try:
        mtu = ["mtu", str(interface.mtu)] if interface.mtu else []
        run(["ip", "link", "set", tap, *mtu, "master", interface.bridge, "up"], op="attach tap", id=tap)
    except BaseException:
        delete_link(tap)
        raise


def delete_link(name: str) -> None:
    """Delete a veth (both ends go) or a TAP; a no-op if it is already gone."""
    if exists(name):
        run(["ip", "link", "delete", name], op="delete interface", id=name, check=False)
