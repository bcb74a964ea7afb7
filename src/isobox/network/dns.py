"""DNS and DHCP of a network: one dnsmasq per network, listening on the bridge's gateway address only.

Names: a hosts file (`--addn-hosts`) of every workload on the network, `IP name alias… short-id`; dnsmasq
re-reads it on SIGHUP (dnsmasq(8), SIGNALS), so names appear and vanish with the workloads. Queries for
other names are forwarded to the host's resolvers, except single-label names (`--domain-needed`) and
private reverse lookups (`--bogus-priv`), which never leave the host.
Every workload is also NAME.<network domain> (model/network.py, network_domain; `--domain`
with `--expand-hosts`), and all of isobox.internal is answered locally, never forwarded (`--local`). A
workload on several networks asks its first network's dnsmasq only, with all its networks' domains in
its search list: that dnsmasq forwards the other networks' domains to their own dnsmasq
(`--servers-file`, re-read on SIGHUP), so the workload resolves the names of every network it is on, as
in Docker, while a workload on one network only still sees that network's names.
Addresses for VMs booted from arbitrary images: DHCP in `static` mode, where only the MAC→IP pairs of
`--dhcp-hostsfile` (written from the same allocation as the containers') get a lease, as libvirt does.

dnsmasq drops root for `nobody` after binding its sockets; its files are therefore kept in a world-
traversable directory of their own (`/run/isobox-dns/<network id>`), not in isobox's private state.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from isobox.command import run
from isobox.errors import HostError
from isobox.linux.proc import process_alive, process_argv, process_exists, read_pid
from isobox.model.network import DNS_SUFFIX, NetworkRecord, network_domain

log = logging.getLogger(__name__)
DNS_ROOT = Path("/run/isobox-dns")


@dataclass(frozen=True)
class HostEntry:
    ip: str
    names: tuple[str, ...]  # the workload's name first, then its aliases and short id
    mac: str = ""  # set for VMs: they get their address by DHCP


def state_dir(network: NetworkRecord) -> Path:
    return DNS_ROOT / network.id[:16]


def hosts_text(entries: Iterable[HostEntry]) -> str:
    return "".join(f"{e.ip}\t{' '.join(e.names)}\n" for e in sorted(entries, key=lambda e: ipaddress.ip_address(e.ip)))


def servers_text(forwards: Iterable[tuple[str, str]]) -> str:
    """--servers-file lines: (domain, dnsmasq address) of the other networks this network's workloads are on."""
    return "".join(f"server=/{domain}/{address}\n" for domain, address in sorted(forwards))


def dhcp_hosts_text(entries: Iterable[HostEntry]) -> str:
    return "".join(f"{e.mac},{e.ip},{e.names[0]}\n" for e in entries if e.mac)


def dnsmasq_argv(network: NetworkRecord, directory: Path) -> list[str]:
    """The dnsmasq command line (pure, golden-tested)."""
    subnet = ipaddress.IPv4Network(network.subnet)
    return [
        "dnsmasq",
        "--conf-file=/dev/null",  # never the host's /etc/dnsmasq.conf
        f"--pid-file={directory / 'dnsmasq.pid'}",
        "--user=nobody",
        "--group=nogroup",
        f"--interface={network.bridge}",
        "--except-interface=lo",
        "--bind-interfaces",  # bind the gateway address only: port 53 of the host stays free
        "--no-hosts",
        f"--addn-hosts={directory / 'hosts'}",
        f"--domain={network_domain(network.name, network.id)}",
        "--expand-hosts",
        f"--local=/{DNS_SUFFIX}/",
        f"--servers-file={directory / 'servers'}",
        "--domain-needed",
        "--bogus-priv",
        "--local-ttl=0",
        f"--dhcp-range={subnet.network_address},static,{subnet.netmask},1h",
        f"--dhcp-hostsfile={directory / 'dhcp-hosts'}",
        f"--dhcp-leasefile={directory / 'leases'}",
        f"--dhcp-option=option:router,{network.gateway}",
        f"--dhcp-option=option:dns-server,{network.gateway}",
        "--dhcp-authoritative",
        f"--log-facility={directory / 'dnsmasq.log'}",  # its own log: hosts have no syslog socket in tests
    ]


def write(network: NetworkRecord, entries: list[HostEntry], forwards: list[tuple[str, str]]) -> None:
    directory = state_dir(network)
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    files = {"hosts": hosts_text(entries), "dhcp-hosts": dhcp_hosts_text(entries), "servers": servers_text(forwards)}
    for name, text in files.items():
        tmp = directory / f".{name}.tmp"
        tmp.write_text(text)
        tmp.chmod(0o644)
        os.replace(tmp, directory / name)


def start(network: NetworkRecord, entries: list[HostEntry], forwards: list[tuple[str, str]]) -> None:
    """Start the network's dnsmasq if it is not running; reload its files if it is. One started with other
    options (by an earlier isobox) is replaced: SIGHUP re-reads files, never the command line."""
    directory = state_dir(network)
    argv = dnsmasq_argv(network, directory)
    pid = _pid(network)
    if pid is not None and process_argv(pid) != argv:
        stop(network)
        pid = None
    write(network, entries, forwards)
    if pid is not None:
        reload(network)
        return
    (directory / "leases").touch(mode=0o644)
    run(argv, op="start dnsmasq", id=network.name)


def reload(network: NetworkRecord) -> None:
    pid = _pid(network)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)


def stop(network: NetworkRecord, timeout_s: float = 3.0) -> None:
    """Stop the dnsmasq this network's pid file names (after checking it is that dnsmasq); remove its files."""
    pid = _pid(network)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        # Until the process is gone, not only until its command line is: an exiting process drops its
        # memory (and so its cmdline) before its sockets, and the next dnsmasq needs the address.
        deadline = time.monotonic() + timeout_s
        while process_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if process_exists(pid):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(state_dir(network), ignore_errors=True)


def running(network: NetworkRecord) -> bool:
    return _pid(network) is not None


def _pid(network: NetworkRecord) -> int | None:
    """The pid from the pid file, only if that process is dnsmasq started for this directory (pids are reused)."""
    pidfile = state_dir(network) / "dnsmasq.pid"
    pid = read_pid(pidfile)
    return pid if process_alive(pid, f"--pid-file={pidfile}".encode()) else None


def check_installed() -> None:
    if shutil.which("dnsmasq") is None:
        raise HostError("dnsmasq is not installed (run scripts/setup: dnsmasq-base)", op="start dnsmasq")
