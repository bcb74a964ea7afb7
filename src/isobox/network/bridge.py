"""The Linux bridge of a network: created with its gateway address, removed with the network.

Per-interface sysctls (Documentation/networking/ip-sysctl.rst) are set on isobox's own bridge only:
- `forwarding=1`: packets received on the bridge (from workloads) may be routed. The global
  net.ipv4.ip_forward is left as the host has it; reaching beyond the host needs it on the uplink too.
- `route_localnet=1`: lets the host's own connections to 127.0.0.1:<published port>, DNATed in the nat
  output hook, leave through the bridge with their 127.0.0.1 source (then masqueraded to the gateway).
  The risk it opens (workloads reaching the host's 127.0.0.1 services, CVE-2020-8558) is closed by a
  drop rule in firewall.py for packets arriving on the bridge towards 127.0.0.0/8.
"""

from __future__ import annotations

import ipaddress
import json
from ipaddress import IPv4Network
from pathlib import Path

from isobox.command import run
from isobox.network.command import write_sysctl

SYS_NET = Path("/sys/class/net")


def exists(name: str) -> bool:
    return (SYS_NET / name).exists()


def create(name: str, gateway: str, prefix_len: int) -> bool:
    """Create and bring up the bridge; False if it already existed (nothing to undo)."""
    if exists(name):
        _configure(name, gateway, prefix_len)
        return False
    run(["ip", "link", "add", "name", name, "type", "bridge"], op="create bridge", id=name)
    try:
        _configure(name, gateway, prefix_len)
    except BaseException:
        delete(name)
        raise
    return True


def _configure(name: str, gateway: str, prefix_len: int) -> None:
    commands = [f"address replace {gateway}/{prefix_len} dev {name}", f"link set {name} up"]
    run(["ip", "-batch", "-"], input="\n".join(commands) + "\n", op="configure bridge", id=name)
    for key in ("forwarding", "route_localnet"):
        write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/{key}", "1", op="configure bridge", id=name)


def delete(name: str) -> None:
    if exists(name):
        run(["ip", "link", "delete", name], op="delete bridge", id=name, check=False)


def host_routes(exclude_devices: tuple[str, ...] = ()) -> list[tuple[str, IPv4Network]]:
    """(device, destination) of every IPv4 route in every table, so a new subnet shadows none of them."""
    text = run(["ip", "-json", "-4", "route", "show", "table", "all"], op="list host routes")
    routes = []
    for entry in json.loads(text or "[]"):
        dst, dev = entry.get("dst", ""), entry.get("dev", "")
        if dst in ("", "default") or dev in exclude_devices or entry.get("type") in ("broadcast", "multicast"):
            continue
        try:
            routes.append((f"route via {dev}", ipaddress.IPv4Network(dst, strict=False)))
        except ValueError:
            continue
    return routes


def ip_forward_enabled() -> bool:
    try:
        return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    except OSError:
        return False
