"""Networks: create (labels kept exactly as given), list, inspect, remove, prune. Connecting a workload
to a network after it was created answers 501 for now: isobox joins workloads to their networks when
it creates them (NetworkingConfig of the container create, which Compose uses from API 1.44 on)."""

from __future__ import annotations

from typing import Any

from isobox.api import filters
from isobox.api.app import App
from isobox.api.messages import Reply, Request, empty, json_reply, require_type
from isobox.api.routing import RouteTable
from isobox.errors import InvalidArgumentError
from isobox.service import filters as matching
from isobox.service import inspect, network_state, networks
from isobox.service.context import Context

routes = RouteTable(missing="network {id} not found")
LIST_FILTERS = matching.NETWORK_FILTERS
PRUNE_FILTERS = ("label", "until")
OP = "create network"


def _ipam(body: dict[str, Any]) -> tuple[str | None, str | None]:
    ipam = require_type(body.get("IPAM") or {}, dict, "IPAM")
    if (ipam.get("Driver") or "default") != "default":
        raise InvalidArgumentError(f"IPAM driver {ipam.get('Driver')!r} is not supported: only default", op=OP)
    configs = require_type(ipam.get("Config") or [], list, "IPAM.Config")
    if len(configs) > 1:
        raise InvalidArgumentError("isobox networks have one IPv4 subnet: give one IPAM.Config entry", op=OP)
    if not configs:
        return None, None
    config = require_type(configs[0], dict, "IPAM.Config[0]")
    for key in ("IPRange", "AuxiliaryAddresses"):
        if config.get(key):
            raise InvalidArgumentError(f"IPAM.Config[0].{key} is not supported", op=OP)
    subnet = require_type(config.get("Subnet") or "", str, "IPAM.Config[0].Subnet") or None
    gateway = require_type(config.get("Gateway") or "", str, "IPAM.Config[0].Gateway") or None
    return subnet, gateway


def create_from_body(ctx: Context, body: dict[str, Any]) -> str:
    name = require_type(body.get("Name") or "", str, "Name")
    if not name:
        raise InvalidArgumentError("Name is required", op=OP)
    if (require_type(body.get("Driver") or "bridge", str, "Driver")) != "bridge":
        raise InvalidArgumentError(f"network driver {body.get('Driver')!r} is not supported: only bridge", op=OP)
    for key, why in (("Internal", "isobox networks always reach outside"), ("EnableIPv6", "IPv4 only"),
                     ("Ingress", "no swarm"), ("ConfigOnly", "no config-only networks")):
        if require_type(body.get(key, False) or False, bool, key):
            raise InvalidArgumentError(f"{key} is not supported: {why}", op=OP)
    options = require_type(body.get("Options") or {}, dict, "Options")
    if options:
        raise InvalidArgumentError(f"network driver options are not supported: {', '.join(sorted(options))}", op=OP)
    labels = require_type(body.get("Labels") or {}, dict, "Labels")
    for key, value in labels.items():
        require_type(value, str, f"Labels[{key!r}]")
    subnet, gateway = _ipam(body)
    return networks.create(ctx, name, subnet=subnet, gateway=gateway, labels=labels).id


@routes.post("/networks/create", "create network")
async def create(app: App, request: Request) -> Reply:
    network_id = await app.workers.call(create_from_body, await request.json())
    return json_reply({"Id": network_id, "Warning": ""}, 201)


def list_documents(ctx: Context, chosen: filters.Filters) -> list[dict[str, Any]]:
    return [inspect.network_document(network, members) for network, members in matching.networks(ctx, chosen)]


@routes.get("/networks", "list networks")
async def list_networks(app: App, request: Request) -> Reply:
    chosen = filters.decode(request.arg("filters"), LIST_FILTERS)
    return json_reply(await app.workers.call(list_documents, chosen))


@routes.post("/networks/prune", "prune networks")
async def prune(app: App, request: Request) -> Reply:
    chosen = filters.decode(request.arg("filters"), PRUNE_FILTERS)
    return json_reply({"NetworksDeleted": await app.workers.call(_prune, chosen)})


def _prune(ctx: Context, chosen: filters.Filters) -> list[str]:
    """Networks no workload is on, except the default one (as Docker never prunes its bridge)."""
    from isobox.service.logs import parse_since

    until = [parse_since(u).timestamp() for u in chosen.get("until", [])]
    removed = []
    for network in networks.list_networks(ctx):
        if network.default or network_state.endpoints(ctx, network):
            continue
        if not filters.label_matches(dict(network.labels), chosen.get("label", [])):
            continue
        if any(network.created_at >= limit for limit in until):
            continue
        networks.remove(ctx, network.id)
        removed.append(network.name)
    return removed


@routes.get("/networks/{id}", "inspect network")
async def inspect_network(app: App, request: Request) -> Reply:
    return json_reply(await app.workers.call(inspect.network, request.params["id"]))


@routes.delete("/networks/{id}", "remove network")
async def remove(app: App, request: Request) -> Reply:
    await app.workers.call(networks.remove, request.params["id"])
    return empty()


@routes.post("/networks/{id}/connect", "connect to network")
async def connect(app: App, request: Request) -> Reply:
    """Body: {"Container": name or id, "EndpointConfig": {"Aliases": [...], "IPAMConfig": {"IPv4Address": ...}}}."""
    body = await request.json()
    container = require_type(body.get("Container") or "", str, "Container")
    if not container:
        raise InvalidArgumentError("Container is required", op="connect to network")
    endpoint = require_type(body.get("EndpointConfig") or {}, dict, "EndpointConfig")
    aliases = [require_type(a, str, "EndpointConfig.Aliases[]")
               for a in require_type(endpoint.get("Aliases") or [], list, "EndpointConfig.Aliases")]
    ipam = require_type(endpoint.get("IPAMConfig") or {}, dict, "EndpointConfig.IPAMConfig")
    address = require_type(ipam.get("IPv4Address") or "", str, "IPAMConfig.IPv4Address") or None
    await app.workers.call(networks.connect, container, request.params["id"], aliases=tuple(aliases), ip=address)
    return empty(200)


@routes.post("/networks/{id}/disconnect", "disconnect from network")
async def disconnect(app: App, request: Request) -> Reply:
    body = await request.json()
    container = require_type(body.get("Container") or "", str, "Container")
    if not container:
        raise InvalidArgumentError("Container is required", op="disconnect from network")
    force = require_type(body.get("Force") or False, bool, "Force")
    await app.workers.call(networks.disconnect, container, request.params["id"], force=force)
    return empty(200)
