"""This host as a node of a cluster: its configuration (<lib>/cluster.json) and its connection to the store.

`join` records which etcd serves the cluster, this node's name and its underlay address, and registers the
node in the store (nodes/<node>). Overlay networks use it today; `isobox cluster init` / `node join`, the node
agent with its lease and the scheduler come with services (docs/cluster.md). A host without the file is in no
cluster: everything works as on one machine.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from isobox.errors import NotFoundError, StateError
from isobox.model.cluster import DEFAULT_NAMESPACE, ClusterConfig, NodeRecord, node_key
from isobox.network import overlay
from isobox.service.context import Context
from isobox.state import codec
from isobox.state.kv import KV

if TYPE_CHECKING:  # httpx and the etcd client: only for hosts in a cluster (every start on a network imports this)
    from isobox.state.etcd import EtcdKV
    from isobox.state.etcd_gateway import EtcdTLS

CONFIG_FILE = "cluster.json"


def config_path(ctx: Context) -> Path:
    return ctx.paths.lib / CONFIG_FILE


def load(ctx: Context) -> ClusterConfig | None:
    path = config_path(ctx)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return codec.loads(ClusterConfig, text)
    except (ValueError, TypeError, KeyError) as exc:
        raise StateError(f"damaged cluster configuration: {exc}", op="read cluster configuration",
                         path=str(path)) from exc


def join(
    ctx: Context,
    endpoints: str | list[str],
    node: str,
    address: str,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    tls: EtcdTLS | None = None,
) -> ClusterConfig:
    """Make this host node ``node`` of the cluster whose store is at ``endpoints``; ``address`` is one of this
    host's addresses that the other nodes reach."""
    from isobox.state.etcd_gateway import parse_endpoints

    overlay.underlay_mtu(overlay.check_address(address))  # refuses an address this host does not have
    config = ClusterConfig(
        endpoints=parse_endpoints(endpoints),
        node=node,
        address=address,
        namespace=namespace,
        ca_cert=str(tls.ca_cert) if tls and tls.ca_cert else "",
        client_cert=str(tls.client_cert) if tls and tls.client_cert else "",
        client_key=str(tls.client_key) if tls and tls.client_key else "",
    )
    with _open(config) as kv:
        kv.put(node_key(node), codec.dumps(NodeRecord(node, address, time.time())))
    path = config_path(ctx)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(codec.to_jsonable(config), indent=2) + "\n")
    os.replace(tmp, path)
    return config


def leave(ctx: Context) -> None:
    """Forget the cluster (the node's key goes from the store); overlay networks must be removed first."""
    config = load(ctx)
    if config is None:
        raise NotFoundError("this host is in no cluster", op="leave cluster")
    with _open(config) as kv:
        kv.delete(node_key(config.node))
    config_path(ctx).unlink()


@contextmanager
def store(ctx: Context) -> Iterator[tuple[ClusterConfig, EtcdKV] | None]:
    """The cluster's store, or None on a host in no cluster."""
    config = load(ctx)
    if config is None:
        yield None
        return
    with _open(config) as kv:
        yield config, kv


@contextmanager
def _open(config: ClusterConfig) -> Iterator[EtcdKV]:
    from isobox.state.etcd import EtcdKV
    from isobox.state.etcd_gateway import EtcdTLS

    tls = None
    if config.ca_cert or config.client_cert:
        tls = EtcdTLS(
            ca_cert=Path(config.ca_cert) if config.ca_cert else None,
            client_cert=Path(config.client_cert) if config.client_cert else None,
            client_key=Path(config.client_key) if config.client_key else None,
        )
    kv = EtcdKV(config.endpoints, namespace=config.namespace, tls=tls)
    try:
        yield kv
    finally:
        kv.close()


def nodes(kv: KV) -> dict[str, NodeRecord]:
    return {e.key.removeprefix("nodes/"): codec.loads(NodeRecord, e.value) for e in kv.items("nodes/")}
