"""The network records and the endpoints (a workload's place on a network): every SQL statement about them.

Each network record is also written to ``records/networks/<id>.json``, so `isobox system check` can rebuild
the table; endpoints are rebuilt from the workloads' own records.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from isobox.errors import ConflictError, NotFoundError
from isobox.model.network import Endpoint, NetworkRecord
from isobox.state import codec
from isobox.state.db import Database
from isobox.state.mirror import JsonMirror


class NetworkRepository:
    def __init__(self, db: Database, records_dir: Path) -> None:
        self.db = db
        self.mirror = JsonMirror(records_dir)

    # ---- networks ------------------------------------------------------------------------------

    def insert(self, network: NetworkRecord) -> None:
        def insert(tx: sqlite3.Connection) -> None:
            try:
                tx.execute(
                    "INSERT INTO networks (id, name, record, created_at) VALUES (?, ?, ?, ?)",
                    (network.id, network.name, codec.dumps(network), network.created_at),
                )
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"network {network.name!r} already exists", op="create network",
                                    id=network.name) from exc

        self.db.write(insert)
        self.mirror.write(network.id, network)

    def save(self, network: NetworkRecord) -> None:
        sql = "UPDATE networks SET name = ?, record = ? WHERE id = ?"
        self.db.write(lambda tx: tx.execute(sql, (network.name, codec.dumps(network), network.id)))
        self.mirror.write(network.id, network)

    def delete(self, network_id: str) -> None:
        self.db.write(lambda tx: tx.execute("DELETE FROM networks WHERE id = ?", (network_id,)), frees=True)
        self.mirror.remove(network_id)

    def all(self) -> list[NetworkRecord]:
        return [_load(r["record"]) for r in self.db.query("SELECT record FROM networks ORDER BY created_at")]

    def by_id(self, network_id: str) -> NetworkRecord | None:
        rows = self.db.query("SELECT record FROM networks WHERE id = ?", (network_id,))
        return _load(rows[0]["record"]) if rows else None

    def exists(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM networks WHERE name = ?", (name,)))

    def get(self, name_or_id: str) -> NetworkRecord:
        rows = self.db.query("SELECT record FROM networks WHERE name = ? OR id = ?", (name_or_id, name_or_id))
        if not rows and len(name_or_id) >= 3:
            rows = self.db.query("SELECT record FROM networks WHERE id LIKE ?", (name_or_id + "%",))
        if len(rows) != 1:
            what = "ambiguous network id prefix" if rows else "no such network"
            raise (ConflictError if rows else NotFoundError)(f"{what}: {name_or_id}", op="find network", id=name_or_id)
        return _load(rows[0]["record"])

    # ---- endpoints -----------------------------------------------------------------------------

    def endpoints(self, network_id: str | None = None, *, workload_id: str | None = None) -> list[Endpoint]:
        """All endpoints, or those of one network and/or one workload."""
        sql, params = "SELECT record FROM endpoints", []
        conditions = []
        if network_id is not None:
            conditions.append("network_id = ?")
            params.append(network_id)
        if workload_id is not None:
            conditions.append("workload_id = ?")
            params.append(workload_id)
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        return [codec.loads_stored(Endpoint, r["record"], "an endpoint") for r in self.db.query(sql, tuple(params))]

    def addresses(self, network_id: str) -> list[str]:
        return [r["ip"] for r in self.db.query("SELECT ip FROM endpoints WHERE network_id = ?", (network_id,))]

    def insert_endpoint(self, endpoint: Endpoint) -> None:
        def insert(tx: sqlite3.Connection) -> None:
            try:
                tx.execute(
                    "INSERT INTO endpoints (network_id, workload_id, ip, record) VALUES (?, ?, ?, ?)",
                    (endpoint.interface.network_id, endpoint.workload_id, endpoint.interface.ip,
                     codec.dumps(endpoint)),
                )
            except sqlite3.IntegrityError as exc:
                raise ConflictError(
                    f"address {endpoint.interface.ip} is already in use on network {endpoint.interface.network}",
                    op="attach network",
                    id=endpoint.workload_name,
                ) from exc

        self.db.write(insert)

    def delete_endpoints(self, workload_id: str, network_id: str | None = None) -> None:
        if network_id is None:
            self.db.write(lambda tx: tx.execute("DELETE FROM endpoints WHERE workload_id = ?", (workload_id,)),
                          frees=True)
        else:
            self.db.write(
                lambda tx: tx.execute(
                    "DELETE FROM endpoints WHERE workload_id = ? AND network_id = ?", (workload_id, network_id)
                ),
                frees=True,
            )

    def restore_endpoint(self, endpoint: Endpoint) -> None:
        """`isobox system check`: an endpoint rebuilt from its workload's record (kept if it exists)."""
        self.db.write(
            lambda tx: tx.execute(
                "INSERT OR IGNORE INTO endpoints (network_id, workload_id, ip, record) VALUES (?, ?, ?, ?)",
                (endpoint.interface.network_id, endpoint.workload_id, endpoint.interface.ip, codec.dumps(endpoint)),
            )
        )

    def mirrored(self) -> list[NetworkRecord]:
        return self.mirror.load_all(NetworkRecord)


def _load(text: str) -> NetworkRecord:
    return codec.loads_stored(NetworkRecord, text, "a network")
