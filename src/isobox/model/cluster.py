"""isobox across hosts, as values: how a host reaches the cluster's store, what the store holds about nodes and
overlay networks, and where (the key layout; docs/cluster.md draws it whole).

Keys, relative to the store's namespace (state/etcd.py, "/isobox/" by default):

    nodes/<node>                          NodeRecord: the node's underlay address (and, later, labels, capacity)
    alive/<node>                          bound to the node's lease: goes when the node stops renewing
    scheduler/leader                      the scheduler's node, bound to its lease (state/election.py)
    services/<service>                    a service's desired state (the services issue)
    assignments/<service>/<slot>          the node a replica runs on, written by the leader (guarded)
    networks/<network>                    OverlayDefinition: id, subnet, VNI
    vnis/<vni>                            the network holding a VXLAN id (claimed by compare-and-set)
    slices/<network>/<index>              the node holding slice <index> of the network's subnet
    endpoints/<network>/<node>/<workload> a workload's address and names on the network (for every node's DNS)
"""

from __future__ import annotations

from dataclasses import dataclass

from isobox.errors import InvalidArgumentError
from isobox.model import ids

DEFAULT_NAMESPACE = "/isobox/"
LOCAL_NODE = "local"  # the node name of a host that is in no cluster


@dataclass(frozen=True)
class ClusterConfig:
    """What a host needs to act as a node: the store's endpoints, its name and its address among the nodes."""

    endpoints: tuple[str, ...]
    node: str
    address: str  # the underlay address other nodes send VXLAN traffic to
    namespace: str = DEFAULT_NAMESPACE
    ca_cert: str = ""
    client_cert: str = ""
    client_key: str = ""

    def __post_init__(self) -> None:
        ids.validate_name(self.node)
        if not self.endpoints:
            raise InvalidArgumentError("a cluster needs at least one etcd endpoint", op="configure cluster")


@dataclass(frozen=True)
class NodeRecord:
    name: str
    address: str
    joined_at: float = 0.0


@dataclass(frozen=True)
class OverlayDefinition:
    """An overlay network as all nodes share it (each node keeps a NetworkRecord of its own part)."""

    id: str
    name: str
    subnet: str
    vni: int
    created_at: float = 0.0
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OverlayEndpoint:
    """A workload on an overlay network, as the other nodes' DNS need it."""

    workload_id: str
    name: str
    ip: str
    aliases: tuple[str, ...] = ()


def node_key(node: str) -> str:
    return f"nodes/{node}"


def network_key(name: str) -> str:
    return f"networks/{name}"


def vni_key(vni: int) -> str:
    return f"vnis/{vni}"


def slices_prefix(network: str) -> str:
    return f"slices/{network}/"


def slice_key(network: str, index: int) -> str:
    return f"slices/{network}/{index}"


def endpoints_prefix(network: str, node: str | None = None) -> str:
    return f"endpoints/{network}/" + (f"{node}/" if node is not None else "")


def endpoint_key(network: str, node: str, workload_id: str) -> str:
    return f"endpoints/{network}/{node}/{workload_id}"
