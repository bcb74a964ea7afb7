"""Networks: create, list, inspect, remove; and joining workloads to them (addresses, interfaces, DNS, NAT).

Records, locking and making the host match the database live in network_state.py. User networks' bridges
exist from `network create` to `network rm`, as Docker's; the default network `isobox` is created on first
use and stays up until `network prune` (network_state.py says why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from isobox.errors import ConflictError, InvalidArgumentError, InvalidStateError, NotFoundError
from isobox.model import ids
from isobox.model.events import EventType
from isobox.model.network import (
    DEFAULT_NETWORK,
    HOST,
    NONE,
    Endpoint,
    InterfacePlan,
    NetworkDriver,
    NetworkMode,
    NetworkPlan,
    NetworkRecord,
    PortPlan,
    PortSpec,
    network_domain,
    network_mode,
)
from isobox.model.plan import USERNS_SIZE, RunPlan
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind, WorkloadSpec
from isobox.model.status import Status
from isobox.network import attach as links
from isobox.network import bridge, dns, ipam, netns, ports
from isobox.service import network_state as state
from isobox.service import overlays
from isobox.service.context import Context
from isobox.service.network_state import endpoints, get, table_name
from isobox.state import codec

__all__ = [
    "attach", "connect", "create", "detach", "disconnect", "endpoints", "get", "inspect", "list_networks",
    "prepare", "prune", "remove", "sync_overlays", "table_name",
]


# ---- networks ---------------------------------------------------------------------------------


def create(
    ctx: Context,
    name: str,
    *,
    subnet: str | None = None,
    gateway: str | None = None,
    labels: Mapping[str, str] | None = None,
    driver: NetworkDriver = NetworkDriver.BRIDGE,
) -> NetworkRecord:
    """A user-defined network; its bridge, DNS and rules are up when this returns. An overlay network spans the
    nodes of the cluster this host is in (service/overlays.py)."""
    ids.validate_name(name)
    if name in (NONE, HOST, DEFAULT_NETWORK):
        raise ConflictError(f"{name!r} is a reserved network name", op="create network", id=name)
    if gateway is not None and subnet is None:
        raise InvalidArgumentError("--gateway needs --subnet", op="create network", id=name)
    if gateway is not None and driver is NetworkDriver.OVERLAY:
        raise InvalidArgumentError("an overlay network has a gateway per node (the first address of its slice): "
                                   "--gateway cannot be given", op="create network", id=name)
    with state.host_lock(), ExitStack() as undo:
        if ctx.records.networks.exists(name):
            raise ConflictError(f"network {name!r} already exists", op="create network", id=name)
        network = _new_network(ctx, name, subnet, gateway, tuple((labels or {}).items()), driver, undo)
        ctx.records.networks.insert(network)
        undo.callback(state.forget, ctx, network)
        state.activate(ctx, network)
        state.sync(ctx, [network])
        undo.pop_all()
    _event(ctx, "create", network)
    return network


def _event(ctx: Context, action: str, network: NetworkRecord, **extra: str) -> None:
    from isobox.service import events

    events.emit(ctx, EventType.NETWORK, action, network.id, {"name": network.name, "type": "bridge", **extra})


def _new_network(ctx: Context, name: str, subnet: str | None, gateway: str | None, labels: tuple[tuple[str, str], ...],
                 driver: NetworkDriver, undo: ExitStack) -> NetworkRecord:
    if driver is NetworkDriver.OVERLAY:
        network = overlays.create(ctx, name, subnet, labels, state.taken(ctx))
        undo.callback(overlays.release, ctx, network)  # runs after state.forget: the store's claims go last
        return network
    # labels as given: Docker returns them unchanged
    return replace(state.new_record(ctx, name, subnet, gateway, default=False), labels=labels)


def remove(ctx: Context, name_or_id: str) -> NetworkRecord:
    network = get(ctx, name_or_id)
    with state.host_lock():
        users = endpoints(ctx, network)
        if users:
            names = ", ".join(sorted(e.workload_name for e in users))
            raise ConflictError(f"network {network.name} is in use by {names}", op="remove network", id=network.name)
        state.forget(ctx, network)
        overlays.release(ctx, network)
    _event(ctx, "destroy", network)
    return network


def sync_overlays(ctx: Context) -> None:
    """Bring this node's overlay networks in line with the cluster's store: its endpoints published, the other
    nodes' names in its DNS, their addresses as VXLAN peers. The node agent runs it periodically."""
    with state.host_lock():
        found = [n for n in state.all_networks(ctx) if n.driver is NetworkDriver.OVERLAY and state.active(ctx, n)]
        state.sync(ctx, found)


def prune(ctx: Context) -> list[NetworkRecord]:
    """Remove every network no workload is on (the default one's record included: it comes back on use)."""
    removed = []
    for network in state.all_networks(ctx):
        if not endpoints(ctx, network):
            removed.append(remove(ctx, network.id))
    return removed


def list_networks(ctx: Context) -> list[NetworkRecord]:
    return state.all_networks(ctx)


def inspect(ctx: Context, name_or_id: str) -> dict[str, object]:
    network = get(ctx, name_or_id)
    members = endpoints(ctx, network)
    return {
        **codec.to_jsonable(network),
        **({"overlay": overlays.describe(ctx, network)} if network.driver is NetworkDriver.OVERLAY else {}),
        "domain": network_domain(network.name, network.id),
        "up": bridge.exists(network.bridge),
        "dns": dns.running(network),
        "endpoints": [
            {
                "workload": e.workload_name,
                "id": e.workload_id,
                "kind": e.kind,
                "ip": e.interface.ip,
                "mac": e.interface.mac,
                "interface": e.interface.host_ifname,
                "aliases": list(e.interface.aliases),
                "ports": [str(p) for p in e.ports],
            }
            for e in members
        ],
    }


def _default(ctx: Context) -> NetworkRecord:
    try:
        return get(ctx, DEFAULT_NETWORK)
    except NotFoundError:
        network = state.new_record(ctx, DEFAULT_NETWORK, None, None, default=True)
        ctx.records.networks.insert(network)
        return network


def _named(ctx: Context, name: str) -> NetworkRecord:
    """A network of this host, or this node's part of an overlay network of its cluster, made on first use."""
    try:
        return get(ctx, name)
    except NotFoundError:
        found = overlays.materialize(ctx, name, state.taken(ctx))
        if found is None:
            raise
        return found


# ---- workloads on networks --------------------------------------------------------------------


def attach(ctx: Context, plan: RunPlan, spec: WorkloadSpec, exposed: tuple[str, ...], undo: ExitStack) -> NetworkPlan:
    """Join a new workload to its networks; every step made is registered on `undo` (the caller's rollback)."""
    names = spec.networks or (DEFAULT_NETWORK,)
    mode = _mode(names, spec)
    if mode is NetworkMode.NONE:
        return NetworkPlan(mode=NetworkMode.NONE)
    if mode is NetworkMode.HOST:
        return NetworkPlan(mode=NetworkMode.HOST)
    with state.host_lock():
        networks = [_default(ctx) if n == DEFAULT_NETWORK else _named(ctx, n) for n in dict.fromkeys(names)]
        undo.callback(state.sync, ctx, networks)  # registered first, so it runs last: after the rows are gone
        for network in networks:
            if not bridge.exists(network.bridge):
                undo.callback(state.settle, ctx, network)
        networks = [state.activate(ctx, n) for n in networks]
        interfaces = [_interface(ctx, plan, spec, n, i) for i, n in enumerate(networks)]
        published = _ports(ctx, spec, exposed, interfaces[0].ip)
        for index, interface in enumerate(interfaces):
            endpoint = Endpoint(plan.id, plan.name, interface, plan.kind.value, published if index == 0 else ())
            state.insert_endpoint(ctx, endpoint)
            undo.callback(state.delete_endpoints, ctx, plan.id)
        netns_path = _plumb(ctx, plan, interfaces, undo)
        state.sync(ctx, networks)
    return NetworkPlan(mode=NetworkMode.BRIDGE, netns_path=netns_path, interfaces=tuple(interfaces), ports=published)


def _mode(names: tuple[str, ...], spec: WorkloadSpec) -> NetworkMode:
    addressed = bool(spec.publish or spec.publish_all or spec.ip or spec.network_aliases)
    return network_mode(names, addressed=addressed, vm=spec.kind is Kind.VM)


def _interface(ctx: Context, plan: RunPlan, spec: WorkloadSpec, network: NetworkRecord, index: int) -> InterfacePlan:
    subnet = IPv4Network(network.subnet)
    used = ctx.records.networks.addresses(network.id)
    pool = IPv4Network(network.allocation_pool)  # an overlay node's own slice: no other node hands these out
    address = ipam.allocate(pool, IPv4Address(network.gateway), used, spec.ip if index == 0 else None)
    make_name = ipam.tap_name if plan.kind is Kind.VM else ipam.veth_name
    return InterfacePlan(
        network=network.name,
        network_id=network.id,
        bridge=network.bridge,
        host_ifname=make_name(plan.id, index),
        ifname=f"eth{index}",
        mac=ipam.mac_for(address),
        ip=str(address),
        prefix_len=subnet.prefixlen,
        gateway=network.gateway,
        dns=(network.gateway,),
        aliases=tuple(spec.network_aliases),
        mtu=network.mtu,
    )


def _plumb(ctx: Context, plan: RunPlan, interfaces: list[InterfacePlan], undo: ExitStack) -> str | None:
    """The kernel side a VM needs at create: a TAP per network. A container's namespace and veths are
    made when it starts (`prepare`), as Docker makes its sandbox: only where the namespace will be is
    decided here."""
    if plan.kind is Kind.VM:
        for interface in interfaces:
            links.add_tap(interface)
            undo.callback(links.delete_link, interface.host_ifname)
        return None
    return str(netns_path(ctx, plan.id))


def _userns(plan: RunPlan) -> tuple[int, int] | None:
    """A --userns container's network namespace belongs to its user namespace (see network/netns.py)."""
    return None if plan.userns_base is None else (plan.userns_base, USERNS_SIZE)


def netns_path(ctx: Context, workload_id: str) -> Path:
    return ctx.paths.run / "netns" / workload_id


def _ports(ctx: Context, spec: WorkloadSpec, exposed: tuple[str, ...], container_ip: str) -> tuple[PortPlan, ...]:
    wanted = list(spec.publish)
    if spec.publish_all:
        explicit = {(p.container_port, p.protocol) for p in wanted}
        wanted += [p for p in map(PortSpec.from_exposed, exposed) if (p.container_port, p.protocol) not in explicit]
    published = [p for e in state.all_endpoints(ctx) for p in e.ports]
    return ports.resolve(wanted, published, container_ip)


def detach(ctx: Context, record: WorkloadRecord) -> None:
    """Remove a workload's interfaces, namespace, addresses, names and ports; tolerant of anything gone.
    What to remove comes from its endpoints as stored (a create killed before its plan was saved has
    them too), and from the plan."""
    stored = ctx.records.networks.endpoints(workload_id=record.id)
    interfaces = {i.host_ifname: i for i in (record.plan.network.interfaces if record.plan.network else ())}
    interfaces.update({e.interface.host_ifname: e.interface for e in stored})
    if not interfaces:
        return
    with state.host_lock():
        path = netns_path(ctx, record.id)
        if record.kind is Kind.CONTAINER and netns.exists(path):
            # The veths go with the namespace: once unpinned (its processes are gone), the kernel frees it
            # and deletes every interface inside, and a veth's host end with its peer. That happens
            # asynchronously (a few ms later), so `rm` does not wait out the RCU grace period that an
            # explicit `ip link delete` of each veth costs (about 20 ms each).
            netns.remove(path)
        else:
            for name in interfaces:
                links.delete_link(name)
        touched = [n for n in state.all_networks(ctx) if n.id in {i.network_id for i in interfaces.values()}]
        state.delete_endpoints(ctx, record.id)
        state.sync(ctx, touched)


def rename_endpoints(ctx: Context, workload_id: str, new_name: str) -> None:
    """The workload's names on its networks' DNS follow a rename."""
    with state.host_lock():
        mine = ctx.records.networks.endpoints(workload_id=workload_id)
        state.delete_endpoints(ctx, workload_id)
        for endpoint in mine:
            state.insert_endpoint(ctx, replace(endpoint, workload_name=new_name))
        touched = [n for n in state.all_networks(ctx) if n.id in {e.interface.network_id for e in mine}]
        state.sync(ctx, touched)


def prepare(ctx: Context, record: WorkloadRecord) -> Callable[[], None] | None:
    """Before a start: bring up what the workload's networks need first (bridges and dnsmasq after a host
    reboot, a container's network namespace on its first start). A container's interfaces are returned as
    a step for the driver to run while the OCI runtime creates the container (runc only needs the
    namespace to exist; the process runs at `runc start`), which hides their cost in the runtime's.
    None when there is nothing left to do (a VM's TAPs are made here)."""
    network = record.plan.network
    if network is None or network.mode is not NetworkMode.BRIDGE:
        return None
    path = Path(network.netns_path) if network.netns_path is not None else None
    missing_ns = path is not None and not netns.exists(path)
    missing = [i for i in network.interfaces if missing_ns or not bridge.exists(i.host_ifname)]
    if not missing and all(bridge.exists(i.bridge) for i in network.interfaces):
        return None
    with state.host_lock(), ExitStack() as undo:
        touched = [n for n in state.all_networks(ctx) if n.id in {i.network_id for i in network.interfaces}]
        for item in touched:
            state.activate(ctx, item)
        if path is None:
            for interface in missing:
                links.add_tap(interface)
                undo.callback(links.delete_link, interface.host_ifname)
        elif missing_ns:
            netns.create(path, _userns(record.plan))
            undo.callback(netns.remove, path)
        state.sync(ctx, touched)
        undo.pop_all()
    if path is None or not missing:
        return None
    return partial(_add_veths, path, network.interfaces, missing, record.name)


def _add_veths(path: Path, interfaces: tuple[InterfacePlan, ...], missing: list[InterfacePlan], workload: str) -> None:
    """A container's veths. Without the network lock: the database is not touched, and no bridge they join
    can go while this workload's endpoints hold it (remove, prune and `settle` check them under the lock)."""
    for interface in missing:
        links.delete_link(interface.host_ifname)  # a host end whose namespace end was lost
        links.add_veth(interface, path, default_route=interface is interfaces[0], workload=workload)


# ---- connect, disconnect ----------------------------------------------------------------------


def _free_index(plan: RunPlan) -> int:
    used = {i.ifname for i in plan.network.interfaces} if plan.network is not None else set()
    return next(n for n in range(len(used) + 1) if f"eth{n}" not in used)


def connect(ctx: Context, workload: str, network: str, *, aliases: tuple[str, ...] = (),
            ip: str | None = None) -> WorkloadRecord:
    """Join a workload to one more network: an address, its DNS names, and (a running container) a new veth
    in its namespace at once; a stopped workload gets the interface at its next start. A running VM would
    need a NIC hot-plugged: refused, with what to do instead."""
    from isobox.service import events, workloads
    from isobox.service.workloads import driver_for, locked_workload

    found = ctx.records.workloads.get(workload)
    with locked_workload(ctx, found.id):
        record = workloads.get(ctx, found.id)
        plan = record.plan
        if plan.network is None or plan.network.mode is not NetworkMode.BRIDGE:
            mode = plan.network.mode.value if plan.network is not None else "none"
            raise InvalidArgumentError(f"{record.name} uses the {mode} network mode: it cannot join a network",
                                       op="connect network", id=record.name)
        running = record.status in (Status.RUNNING, Status.PAUSED)
        if running and record.kind is Kind.VM:
            raise InvalidStateError(f"VM {record.name} is running: stop it, connect it, and start it again (its "
                                    "NICs are fixed while it runs)", op="connect network", id=record.name)
        with state.host_lock(), ExitStack() as undo:
            target = _default(ctx) if network == DEFAULT_NETWORK else get(ctx, network)
            if any(i.network_id == target.id for i in plan.network.interfaces):
                raise ConflictError(f"{record.name} is already on network {target.name}", op="connect network",
                                    id=record.name)
            if not bridge.exists(target.bridge):
                undo.callback(state.settle, ctx, target)
            target = state.activate(ctx, target)
            index = _free_index(plan)
            spec = WorkloadSpec(image=plan.image, kind=record.kind, ip=ip, network_aliases=aliases)
            make_name = ipam.tap_name if record.kind is Kind.VM else ipam.veth_name
            interface = replace(_interface(ctx, plan, spec, target, 0 if ip else 1),
                                host_ifname=make_name(plan.id, index), ifname=f"eth{index}")
            state.insert_endpoint(ctx, Endpoint(plan.id, record.name, interface, record.kind.value))
            undo.callback(ctx.records.networks.delete_endpoints, plan.id, target.id)
            if running and plan.network.netns_path is not None and netns.exists(Path(plan.network.netns_path)):
                links.add_veth(interface, Path(plan.network.netns_path), default_route=False, workload=record.name)
                undo.callback(links.delete_link, interface.host_ifname)
            updated = replace(record, plan=replace(plan, network=replace(
                plan.network, interfaces=(*plan.network.interfaces, interface))))
            workloads.save(ctx, updated)
            state.sync(ctx, [n for n in state.all_networks(ctx)
                             if n.id in {i.network_id for i in updated.plan.network.interfaces}])  # type: ignore[union-attr]
            undo.pop_all()
        driver_for(ctx, record.kind).replan(updated)
    events.emit(ctx, EventType.NETWORK, "connect", target.id, {"container": record.id, "name": target.name,
                                                                "type": "bridge"})
    return updated


def disconnect(ctx: Context, workload: str, network: str, *, force: bool = False) -> WorkloadRecord:
    """Leave one network: the interface (a running container's veth at once), the address and the names."""
    from isobox.service import events, workloads
    from isobox.service.workloads import driver_for, locked_workload

    found = ctx.records.workloads.get(workload)
    with locked_workload(ctx, found.id):
        record = workloads.get(ctx, found.id)
        plan = record.plan
        target = get(ctx, network)
        interfaces = plan.network.interfaces if plan.network is not None else ()
        leaving = next((i for i in interfaces if i.network_id == target.id), None)
        if leaving is None or plan.network is None:
            raise NotFoundError(f"{record.name} is not on network {target.name}", op="disconnect network",
                                id=record.name)
        running = record.status in (Status.RUNNING, Status.PAUSED)
        if running and record.kind is Kind.VM:
            raise InvalidStateError(f"VM {record.name} is running: stop it to disconnect it (its NICs are fixed "
                                    "while it runs)", op="disconnect network", id=record.name)
        if leaving is interfaces[0] and plan.network.ports and not force:
            raise InvalidStateError(f"{record.name} publishes ports through {target.name}", op="disconnect network",
                                    id=record.name)
        with state.host_lock():
            links.delete_link(leaving.host_ifname)
            ctx.records.networks.delete_endpoints(plan.id, target.id)
            updated = replace(record, plan=replace(plan, network=replace(
                plan.network, interfaces=tuple(i for i in interfaces if i is not leaving))))
            workloads.save(ctx, updated)
            state.sync(ctx, [target])
        driver_for(ctx, record.kind).replan(updated)
    events.emit(ctx, EventType.NETWORK, "disconnect", target.id, {"container": record.id, "name": target.name,
                                                                   "type": "bridge"})
    return updated
