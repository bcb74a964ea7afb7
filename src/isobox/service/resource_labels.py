"""Labels and driver options of networks and volumes, which Docker's API sets at create and returns as given.

A network's labels live in its record (NetworkRecord.labels). Volumes have no column for them: they are
kept in the key-value table under ``volume:<name>``, with the volume's creation time, so a volume removed
elsewhere (the CLI) and made again under the same name does not inherit the old labels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace

from isobox.model.network import NetworkRecord
from isobox.service import network_state, networks, volumes
from isobox.service.context import Context
from isobox.storage.volumes import VolumeRecord

_PREFIX = "volume:"


def create_network(ctx: Context, name: str, *, subnet: str | None = None, gateway: str | None = None,
                   labels: Mapping[str, str] | None = None) -> NetworkRecord:
    network = networks.create(ctx, name, subnet=subnet, gateway=gateway)
    if not labels:
        return network
    with network_state.host_lock():
        network = replace(network_state.get(ctx, network.id), labels=tuple(labels.items()))
        network_state.save(ctx, network)
    return network


def create_volume(ctx: Context, name: str | None, *, options: tuple[str, ...] = (),
                  labels: Mapping[str, str] | None = None,
                  driver_options: Mapping[str, str] | None = None) -> tuple[VolumeRecord, bool]:
    """The volume (made if missing; an existing one is returned as Docker does) and whether it was made now."""
    existed = name is not None and any(v.name == name for v in volumes.list_volumes(ctx))
    record = volumes.create(ctx, name, options)
    if not existed and (labels or driver_options):
        document = {"created_at": record.created_at, "labels": dict(labels or {}),
                    "options": dict(driver_options or {})}
        with ctx.db.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                       (_PREFIX + record.name, json.dumps(document)))
    return record, not existed


def volume_labels(ctx: Context, volume: VolumeRecord) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, driver options) given when ``volume`` was created through the API."""
    rows = ctx.db.query("SELECT value FROM kv WHERE key = ?", (_PREFIX + volume.name,))
    if not rows:
        return {}, {}
    document = json.loads(rows[0]["value"])
    if document.get("created_at") != volume.created_at:
        return {}, {}
    return dict(document.get("labels") or {}), dict(document.get("options") or {})


def forget_volume(ctx: Context, name: str) -> None:
    with ctx.db.transaction() as tx:
        tx.execute("DELETE FROM kv WHERE key = ?", (_PREFIX + name,))


def remove_volume(ctx: Context, name: str, *, force: bool = False) -> None:
    volumes.remove(ctx, name, force=force)
    forget_volume(ctx, name)


def prune_volumes(ctx: Context) -> list[str]:
    removed = volumes.prune(ctx)
    for name in removed:
        forget_volume(ctx, name)
    return removed
