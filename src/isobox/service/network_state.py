"""The network records and the host's side of them: the database is the truth, `sync` makes the host match.

Every change writes the database first; `sync` then brings each touched network's DNS files (and dnsmasq)
in line and re-renders isobox's whole nftables table, swapped atomically. Undo callbacks therefore only
delete what they made and call `sync` again.

The default network's bridge, dnsmasq and rules come up with the first workload on it and then stay up, as
Docker's docker0 and Incus's default bridge do, so later workloads only add their own interface (this is
most of the network's share of `run --rm` latency; bringing a bridge down costs the kernel ~50 ms). They go
with `network prune` (or `network rm isobox`) once no workload is on it, and a failed create that brought
them up takes them down again: after pruning, nothing of isobox is left in `ip link` or `nft list ruleset`.
Its subnet is re-checked against the host's routes each time it comes up (`recheck_subnet`).

All network changes of all isobox roots on the host serialize on one flock (/run/lock/isobox-network.lock):
subnets are chosen against the host's routes, which every root shares.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path

from isobox.errors import ConflictError
from isobox.model import ids
from isobox.model.network import Endpoint, NetworkDriver, NetworkRecord
from isobox.model.spec import Kind
from isobox.network import bridge, dns, firewall, ipam
from isobox.service import overlays
from isobox.service.context import Context
from isobox.state.locks import locked

log = logging.getLogger(__name__)
LOCK_DIR = Path("/run/lock")

# ---- records ----------------------------------------------------------------------------------


@contextmanager
def host_lock() -> Iterator[None]:
    with locked(LOCK_DIR, "isobox-network"):
        yield


def save(ctx: Context, network: NetworkRecord) -> None:
    ctx.records.networks.save(network)


def all_networks(ctx: Context) -> list[NetworkRecord]:
    return ctx.records.networks.all()


def get(ctx: Context, name_or_id: str) -> NetworkRecord:
    return ctx.records.networks.get(name_or_id)


def endpoints(ctx: Context, network: NetworkRecord) -> list[Endpoint]:
    return ctx.records.networks.endpoints(network.id)


def all_endpoints(ctx: Context) -> list[Endpoint]:
    return ctx.records.networks.endpoints()


def _root_key(ctx: Context) -> str | None:
    root = ctx.paths.root
    if root is None:
        return None
    import hashlib  # loads OpenSSL: a few ms that the system root never needs

    return hashlib.sha256(str(root).encode()).hexdigest()


def table_name(ctx: Context) -> str:
    return ipam.table_name(_root_key(ctx))


def taken(ctx: Context, exclude: NetworkRecord | None = None) -> list[tuple[str, IPv4Network]]:
    """Subnets a network may not overlap: the other networks of this root and every route of the host."""
    others = [n for n in all_networks(ctx) if exclude is None or n.id != exclude.id]
    own = [(f"network {n.name}", IPv4Network(n.subnet)) for n in others]
    devices = (exclude.bridge,) if exclude is not None else ()
    return own + bridge.host_routes(exclude_devices=devices)


def new_record(ctx: Context, name: str, subnet: str | None, gateway: str | None, default: bool) -> NetworkRecord:
    if subnet is not None:
        chosen = ipam.parse_subnet(subnet, op="create network")
        ipam.check_free(chosen, taken(ctx))
    else:
        pool, prefix = ipam.pool_from_env()
        chosen = ipam.pick_subnet(pool, prefix, [net for _, net in taken(ctx)])
    network_id = ids.new_id()
    return NetworkRecord(
        id=network_id,
        name=name,
        subnet=str(chosen),
        gateway=str(ipam.gateway_for(chosen, gateway)),
        bridge=ipam.bridge_name(network_id, default=default, system_root=ctx.paths.root is None),
        default=default,
        created_at=time.time(),
    )




def active(ctx: Context, network: NetworkRecord) -> bool:
    """User networks are up from create to rm; the default network from first use to prune."""
    return not network.default or bridge.exists(network.bridge) or bool(endpoints(ctx, network))


def settle(ctx: Context, network: NetworkRecord) -> None:
    """Rollback of a failed create that brought the default network up: down again if nothing is on it.
    (Runs as an undo step, after attach released the lock: another create may be attaching meanwhile.)"""
    with host_lock():
        if network.default and not endpoints(ctx, network):
            deactivate(network)


def activate(ctx: Context, network: NetworkRecord) -> NetworkRecord:
    """Bridge and dnsmasq of the network, if not up yet (first workload on the default network, host reboot)."""
    if bridge.exists(network.bridge) and dns.running(network):
        return network
    if not bridge.exists(network.bridge):
        network = recheck_subnet(ctx, network)
        # The host lost state (reboot, or a private root's run directory that outlived it): the table may be
        # gone while the record of what was applied is not, so the next sync must apply again.
        _applied(ctx).unlink(missing_ok=True)
    dns.check_installed()
    bridge.create(network.bridge, network.gateway, network.prefix_len)
    overlays.link_up(ctx, network)
    dns.start(network, host_entries(ctx, network), forwards(ctx, network))
    if not bridge.ip_forward_enabled():
        log.info("net.ipv4.ip_forward is 0: workloads reach the host and each other, not beyond the host")
    return network


def recheck_subnet(ctx: Context, network: NetworkRecord) -> NetworkRecord:
    """Another root (or the host) may have taken the subnet while this network was down."""
    busy = taken(ctx, exclude=network)
    try:
        ipam.check_free(IPv4Network(network.subnet), busy)
        return network
    except ConflictError:
        if not network.default or endpoints(ctx, network):
            raise
    pool, prefix = ipam.pool_from_env()
    subnet = ipam.pick_subnet(pool, prefix, [net for _, net in busy])
    moved = replace(network, subnet=str(subnet), gateway=str(ipam.gateway_for(subnet)))
    log.info("default network moved from %s to %s (the old subnet is in use on the host)", network.subnet, subnet)
    save(ctx, moved)
    return moved


def deactivate(network: NetworkRecord) -> None:
    overlays.link_down(network)
    dns.stop(network)
    bridge.delete(network.bridge)


def host_entries(ctx: Context, network: NetworkRecord) -> list[dns.HostEntry]:
    return [
        dns.HostEntry(
            ip=e.interface.ip,
            names=(e.workload_name, *e.interface.aliases, e.workload_id[:12]),
            mac=e.interface.mac if e.kind == Kind.VM.value else "",
        )
        for e in endpoints(ctx, network)
    ] + overlays.remote_entries(ctx, network)


def forwards(ctx: Context, network: NetworkRecord) -> list[tuple[str, str]]:
    """(domain, dnsmasq address) of the other networks of the workloads that ask this network's dnsmasq
    (those whose first network it is: eth0), for its --servers-file."""
    askers = {e.workload_id for e in endpoints(ctx, network) if e.interface.ifname == "eth0"}
    found = {
        (e.interface.domain, e.interface.gateway)
        for e in all_endpoints(ctx)
        if e.workload_id in askers and e.interface.network_id != network.id
    }
    return sorted(found)


def sync(ctx: Context, touched: list[NetworkRecord]) -> None:
    """Make DNS and the firewall match the database for the touched networks (and every port)."""
    for stale in touched:
        network = ctx.records.networks.by_id(stale.id)
        if network is None:
            continue
        if not active(ctx, network):
            deactivate(network)
        elif bridge.exists(network.bridge):
            if network.driver is NetworkDriver.OVERLAY:
                overlays.publish(ctx, network)  # this node's endpoints out, the other nodes' in
            dns.start(network, host_entries(ctx, network), forwards(ctx, network))
    apply_firewall(ctx)


def apply_firewall(ctx: Context) -> None:
    networks = [n for n in all_networks(ctx) if active(ctx, n)]
    ports = tuple(p for e in all_endpoints(ctx) for p in e.ports)
    rules = firewall.Ruleset(
        table=table_name(ctx),
        bridges=tuple(firewall.BridgeRules(n.bridge, n.subnet) for n in networks),
        ports=ports,
    )
    firewall.apply(rules, _applied(ctx))


def _applied(ctx: Context) -> Path:
    """The last ruleset script applied (firewall.apply skips an identical one)."""
    return ctx.paths.run / "nftables.applied"


def forget(ctx: Context, network: NetworkRecord) -> None:
    deactivate(network)  # the host's side first: on a full disk the record still goes after it
    ctx.records.networks.delete(network.id)
    apply_firewall(ctx)


def insert_endpoint(ctx: Context, endpoint: Endpoint) -> None:
    ctx.records.networks.insert_endpoint(endpoint)


def delete_endpoints(ctx: Context, workload_id: str) -> None:
    ctx.records.networks.delete_endpoints(workload_id)
