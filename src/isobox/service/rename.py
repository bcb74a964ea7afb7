"""Renaming a workload (Docker's `rename`): its record, and its names on its networks' DNS."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from isobox.errors import ConflictError
from isobox.model import ids
from isobox.model.network import NetworkMode
from isobox.model.record import WorkloadRecord
from isobox.service import network_state, workloads
from isobox.service.context import Context
from isobox.state import codec
from isobox.state.locks import locked


def rename(ctx: Context, name_or_id: str, new_name: str) -> WorkloadRecord:
    """Rename a workload in any state; its old name stops resolving on its networks, the new one starts."""
    new_name = ids.validate_name(new_name.removeprefix("/"))
    found = workloads.get(ctx, name_or_id)
    with locked(ctx.paths.locks, f"workload-{found.id}"):
        record = workloads.get(ctx, found.id)
        if record.name == new_name:
            return record
        renamed = replace(record, name=new_name, plan=replace(record.plan, name=new_name))
        try:
            with ctx.db.transaction() as tx:
                # A plain UPDATE: the UNIQUE name refuses a taken name (INSERT OR REPLACE would drop its owner).
                tx.execute("UPDATE workloads SET name = ?, record = ? WHERE id = ?",
                           (new_name, codec.dumps(renamed), record.id))
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"the name {new_name!r} is already in use", op="rename", id=record.name) from exc
    network = record.plan.network
    if network is not None and network.mode is NetworkMode.BRIDGE:
        _rename_endpoints(ctx, record.id, new_name)
    return renamed


def _rename_endpoints(ctx: Context, workload_id: str, new_name: str) -> None:
    with network_state.host_lock():
        mine = [e for e in network_state.all_endpoints(ctx) if e.workload_id == workload_id]
        network_state.delete_endpoints(ctx, workload_id)
        for endpoint in mine:
            network_state.insert_endpoint(ctx, replace(endpoint, workload_name=new_name))
        touched = [n for n in network_state.all_networks(ctx) if n.id in {e.interface.network_id for e in mine}]
        network_state.sync(ctx, touched)
