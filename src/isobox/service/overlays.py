"""Overlay networks in the service layer: the definition all nodes share (in the cluster's store) and this
node's part of it on this host (a NetworkRecord with its slice, a bridge, a VXLAN device, a dnsmasq).

- `create` claims the name, a VXLAN id and this node's slice in the store, each by compare-and-set, so two
  nodes creating at once never share one; on a host in no cluster the network is this host's alone (slice 0,
  no VXLAN device: there is nobody to reach).
- Another node gets its part when one of its workloads first names the network (`materialize`).
- network_state.py calls the hooks here: `link_up` when the bridge comes up, `link_down` when it goes, and
  `publish` on every sync: this node's endpoints are written to the store, the other nodes' are read back for
  its dnsmasq, and the VXLAN peers are set to the nodes holding a slice. Nodes learn of each other's changes
  on their next sync: `networks.sync_overlays` is what the node agent runs periodically.
- A store that cannot be reached never stops a local change: the last names seen are kept
  (<run>/overlays/<id>.json) and the next sync catches up.
- `release` (after `network rm`) gives back this node's slice and endpoints; the last node to leave also
  removes the definition and its VXLAN id.
"""

from __future__ import annotations

import json
import logging
import os
import time
from ipaddress import IPv4Network
from pathlib import Path

from isobox.errors import ConflictError, HostError
from isobox.model import ids
from isobox.model.cluster import (
    LOCAL_NODE,
    ClusterConfig,
    OverlayDefinition,
    OverlayEndpoint,
    endpoint_key,
    endpoints_prefix,
    network_key,
    slice_key,
    slices_prefix,
    vni_key,
)
from isobox.model.network import NetworkDriver, NetworkRecord
from isobox.network import bridge, dns, ipam, overlay
from isobox.service import cluster
from isobox.service.context import Context
from isobox.state import codec
from isobox.state.kv import KV

log = logging.getLogger(__name__)
DEFAULT_POOL = "10.208.0.0/12"  # beside the bridge networks' 10.199.0.0/16; /16 overlays of 256 /24 slices
DEFAULT_PREFIX = 16
_CLAIM_TRIES = 20


def create(ctx: Context, name: str, subnet: str | None, labels: tuple[tuple[str, str], ...],
           taken: list[tuple[str, IPv4Network]]) -> NetworkRecord:
    """This node's part of a new overlay network (the caller inserts and activates it)."""
    with cluster.store(ctx) as found:
        if found is None:
            local = [n.vni for n in ctx.records.networks.all() if n.driver is NetworkDriver.OVERLAY]
            chosen = _subnet(subnet, taken, [])
            vni = overlay.pick_vni(local)
            definition = OverlayDefinition(ids.new_id(), name, str(chosen), vni, time.time(), labels)
            return _part(definition, 0, None)
        config, kv = found
        if kv.get(network_key(name)) is not None:
            raise ConflictError(f"network {name!r} already exists in the cluster", op="create network", id=name)
        others = [IPv4Network(d.subnet) for d in _definitions(kv)]
        chosen = _subnet(subnet, taken, others)
        vni = _claim_vni(kv, name)
        definition = OverlayDefinition(ids.new_id(), name, str(chosen), vni, time.time(), labels)
        try:
            kv.put(network_key(name), codec.dumps(definition), expect=0)
        except ConflictError:
            kv.delete(vni_key(vni))
            raise ConflictError(f"network {name!r} already exists in the cluster", op="create network",
                                id=name) from None
        return _part(definition, _claim_slice(kv, definition, config.node), config)


def materialize(ctx: Context, name: str, taken: list[tuple[str, IPv4Network]]) -> NetworkRecord | None:
    """This node's part of an overlay network another node created, or None if the cluster has none so named."""
    with cluster.store(ctx) as found:
        if found is None:
            return None
        config, kv = found
        entry = kv.get(network_key(name))
        if entry is None:
            return None
        definition = codec.loads(OverlayDefinition, entry.value)
        ipam.check_free(IPv4Network(definition.subnet), taken)
        record = _part(definition, _claim_slice(kv, definition, config.node), config)
    ctx.records.networks.insert(record)
    return record


def _part(definition: OverlayDefinition, index: int, config: ClusterConfig | None) -> NetworkRecord:
    subnet = IPv4Network(definition.subnet)
    piece = overlay.slice_of(subnet, index)
    mtu = overlay.mtu_inside(overlay.underlay_mtu(config.address)) if config is not None else 0
    return NetworkRecord(
        id=definition.id,
        name=definition.name,
        subnet=definition.subnet,
        gateway=overlay.gateway_of(piece),
        bridge=ipam.bridge_name(definition.id, default=False, system_root=False),
        created_at=definition.created_at,
        labels=definition.labels,
        driver=NetworkDriver.OVERLAY,
        vni=definition.vni,
        pool=str(piece),
        mtu=mtu,
    )


def _subnet(
    wanted: str | None, taken: list[tuple[str, IPv4Network]], cluster_subnets: list[IPv4Network]
) -> IPv4Network:
    busy = taken + [("an overlay network of the cluster", s) for s in cluster_subnets]
    if wanted is not None:
        chosen = ipam.parse_subnet(wanted, op="create network")
        overlay.slice_prefix(chosen)
        ipam.check_free(chosen, busy)
        return chosen
    text = os.environ.get("ISOBOX_OVERLAY_POOL", DEFAULT_POOL)
    cidr, _, size = text.partition(",size=")
    pool = ipam.parse_subnet(cidr, op="parse ISOBOX_OVERLAY_POOL")
    return ipam.pick_subnet(pool, int(size) if size.isdigit() else DEFAULT_PREFIX, [net for _, net in busy])


def _definitions(kv: KV) -> list[OverlayDefinition]:
    return [codec.loads(OverlayDefinition, e.value) for e in kv.items("networks/")]


def _claim_vni(kv: KV, name: str) -> int:
    for _ in range(_CLAIM_TRIES):
        vni = overlay.pick_vni(int(e.key.removeprefix("vnis/")) for e in kv.items("vnis/"))
        try:
            kv.put(vni_key(vni), name, expect=0)
            return vni
        except ConflictError:
            continue  # another node claimed it meanwhile
    raise ConflictError("could not claim a VXLAN id (too many concurrent creates)", op="create network", id=name)


def _claim_slice(kv: KV, definition: OverlayDefinition, node: str) -> int:
    subnet = IPv4Network(definition.subnet)
    for _ in range(_CLAIM_TRIES):
        taken = {int(e.key.rsplit("/", 1)[1]): e.value for e in kv.items(slices_prefix(definition.name))}
        holders = sorted(set(taken.values()) - {node})
        index = overlay.assign_slices(subnet, [*holders, node], taken)[node]
        if taken.get(index) == node:
            return index
        try:
            kv.put(slice_key(definition.name, index), node, expect=0)
            return index
        except ConflictError:
            continue
    raise ConflictError(f"could not claim a slice of {definition.subnet}", op="join network", id=definition.name)


# ---- hooks of network_state.py ------------------------------------------------------------------


def link_up(ctx: Context, network: NetworkRecord) -> None:
    """The VXLAN device on the network's bridge, with the peers known now (a host in no cluster has none)."""
    config = cluster.load(ctx)
    if config is None or network.driver is not NetworkDriver.OVERLAY:
        return
    link = overlay.OverlayLink(overlay.vxlan_name(network.id), network.bridge, network.vni, config.address,
                               network.mtu, tuple(str(p) for p in _cache(ctx, network).get("peers", [])))
    overlay.ensure(link)


def link_down(network: NetworkRecord) -> None:
    if network.driver is NetworkDriver.OVERLAY:
        overlay.delete(overlay.vxlan_name(network.id))


def publish(ctx: Context, network: NetworkRecord) -> None:
    """Store ← this node's endpoints; this node ← the others' endpoints (for DNS) and addresses (VXLAN peers)."""
    try:
        with cluster.store(ctx) as found:
            if found is None:
                return
            config, kv = found
            remote, peers = _exchange(ctx, kv, config.node, network)
    except HostError as exc:
        log.warning("overlay %s: the cluster's store is unreachable, keeping the last names and peers: %s",
                    network.name, exc)
        return
    _save_cache(ctx, network, {"remote": [codec.to_jsonable(e) for e in remote], "peers": peers})
    vxlan = overlay.vxlan_name(network.id)
    if bridge.exists(vxlan):
        overlay.set_peers(vxlan, peers)


def _exchange(ctx: Context, kv: KV, node: str, network: NetworkRecord) -> tuple[list[OverlayEndpoint], list[str]]:
    mine = endpoints_prefix(network.name, node)
    local = {
        e.workload_id: OverlayEndpoint(e.workload_id, e.workload_name, e.interface.ip, e.interface.aliases)
        for e in ctx.records.networks.endpoints(network.id)
    }
    stored = {e.key.removeprefix(mine): e for e in kv.items(mine)}
    for workload_id, endpoint in local.items():
        text = codec.dumps(endpoint)
        if workload_id not in stored or stored[workload_id].value != text:
            kv.put(endpoint_key(network.name, node, workload_id), text)
    for workload_id in stored.keys() - local.keys():
        kv.delete(endpoint_key(network.name, node, workload_id))
    remote = [codec.loads(OverlayEndpoint, e.value) for e in kv.items(endpoints_prefix(network.name))
              if not e.key.startswith(mine)]
    holders = {e.value for e in kv.items(slices_prefix(network.name))} - {node}
    addresses = cluster.nodes(kv)
    peers = sorted(addresses[h].address for h in holders if h in addresses)
    return remote, peers


def remote_entries(ctx: Context, network: NetworkRecord) -> list[dns.HostEntry]:
    """The other nodes' workloads on the network, as last read from the store (no MAC: they are not ours to
    answer DHCP for)."""
    if network.driver is not NetworkDriver.OVERLAY:
        return []
    found = []
    for raw in _cache(ctx, network).get("remote", []):
        if not isinstance(raw, dict):
            continue
        endpoint = codec.from_dict(OverlayEndpoint, raw)
        found.append(dns.HostEntry(endpoint.ip, (endpoint.name, *endpoint.aliases, endpoint.workload_id[:12])))
    return found


def release(ctx: Context, network: NetworkRecord) -> None:
    """After `network rm` on this node: its slice and endpoints go from the store; with the last node, the
    network's definition and VXLAN id too."""
    _cache_path(ctx, network).unlink(missing_ok=True)
    if network.driver is not NetworkDriver.OVERLAY:
        return
    try:
        with cluster.store(ctx) as found:
            if found is not None:
                _give_back(found[1], found[0].node, network)
    except HostError as exc:
        # The local part is gone already; the slice stays claimed until this node syncs with the store again.
        log.warning("overlay %s: could not give this node's slice back to the cluster's store: %s", network.name, exc)


def _give_back(kv: KV, node: str, network: NetworkRecord) -> None:
    for entry in kv.items(endpoints_prefix(network.name, node)):
        kv.delete(entry.key)
    slices = kv.items(slices_prefix(network.name))
    for entry in slices:
        if entry.value == node:
            kv.delete(entry.key, expect=entry.mod_revision)
    if any(entry.value != node for entry in slices):
        return  # other nodes still have their part
    definition = kv.get(network_key(network.name))
    if definition is not None and codec.loads(OverlayDefinition, definition.value).id == network.id:
        kv.delete(network_key(network.name), expect=definition.mod_revision)
        kv.delete(vni_key(network.vni))


def describe(ctx: Context, network: NetworkRecord) -> dict[str, object]:
    config = cluster.load(ctx)
    return {
        "node": config.node if config is not None else LOCAL_NODE,
        "vni": network.vni,
        "slice": network.pool,
        "mtu": network.mtu,
        "vxlan": overlay.vxlan_name(network.id) if config is not None else "",
        "peers": overlay.peers(overlay.vxlan_name(network.id)),
    }


def _cache_path(ctx: Context, network: NetworkRecord) -> Path:
    return ctx.paths.run / "overlays" / f"{network.id}.json"


def _cache(ctx: Context, network: NetworkRecord) -> dict[str, list[object]]:
    try:
        loaded = json.loads(_cache_path(ctx, network).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _save_cache(ctx: Context, network: NetworkRecord, data: dict[str, object]) -> None:
    path = _cache_path(ctx, network)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)
