"""Rebuilding records from what is on disk (`isobox system check`, service/check.py), one kind at a time:

- networks, from their JSON copies (lib/records/networks);
- images, from the blob store: every manifest whose config and layer blobs are all there becomes an image
  again, named by its JSON copy (lib/records/images: its tags and RepoDigests), else by the name a
  workload was run with, else untagged;
- volumes, from lib/volumes/ (labels, options and anonymity from their JSON copies where there are some);
- workloads, from their JSON copies (lib/records/workloads), and their places on networks (endpoints)
  from their plans.

With ``rebuild`` each step records what the database lacks; without, it only says what it would do. Every
step is idempotent: what the database already holds is left as it is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from isobox.errors import ConflictError, IsoboxError
from isobox.images import reference
from isobox.images.manifest import MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES
from isobox.model.network import Endpoint, NetworkRecord
from isobox.model.record import WorkloadRecord
from isobox.service.check import Findings, Severity
from isobox.service.context import Context
from isobox.state.images import ImageNames
from isobox.state.volumes import VolumeRow

_ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")  # the names isobox gives anonymous volumes (storage/volumes.py)


def recover(ctx: Context, found: Findings, *, rebuild: bool) -> None:
    damaged: list[tuple[Path, str]] = []
    copies = _workload_copies(ctx, damaged)
    _networks(ctx, found, rebuild, damaged)
    _images(ctx, found, rebuild, copies, damaged)
    _volumes(ctx, found, rebuild, damaged)
    _workloads(ctx, found, rebuild, copies)
    if rebuild:
        _write_copies(ctx)
    for path, reason in damaged:
        subject = f"record copy {path}"
        if rebuild and _readable(path):
            found.add(Severity.REPAIRED, subject, f"was unreadable ({reason}): written again from the database")
        elif rebuild:
            found.add(Severity.LOST, subject, f"unreadable ({reason}) and of no record: it is ignored; remove it")
        else:
            _pending(found, subject, f"unreadable ({reason}), ignored")


def _readable(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text()), dict)
    except (OSError, ValueError):
        return False


def _write_copies(ctx: Context) -> None:
    """Every record's JSON copy written again from the database (a damaged copy of a record is replaced);
    a damaged copy that stays is of no record."""
    for record in ctx.records.workloads.all():
        ctx.records.workloads.mirror.write(record.id, record)
    for network in ctx.records.networks.all():
        ctx.records.networks.mirror.write(network.id, network)
    for row in ctx.records.volumes.all():
        ctx.records.volumes.mirror.write(row.name, row)
    ctx.images.records.rewrite_copies()


def _pending(found: Findings, subject: str, what: str) -> None:
    found.add(Severity.PROBLEM, subject, f"{what}: `isobox system check --repair` records it")


# ---- networks -------------------------------------------------------------------------------------


def _networks(ctx: Context, found: Findings, rebuild: bool, damaged: list[tuple[Path, str]]) -> None:
    copies, unreadable = ctx.records.networks.mirror.scan(NetworkRecord)
    damaged += unreadable
    known = {n.id for n in ctx.records.networks.all()}
    for network in copies:
        if network.id in known:
            continue
        subject = f"network {network.name}"
        if not rebuild:
            _pending(found, subject, "it has a JSON copy but no record")
            continue
        try:
            ctx.records.networks.insert(network)
            found.add(Severity.REPAIRED, subject, "recovered from its JSON copy")
        except ConflictError as exc:
            found.add(Severity.LOST, subject, f"not recovered: {exc}")


# ---- images ---------------------------------------------------------------------------------------


def _images(ctx: Context, found: Findings, rebuild: bool, workloads: list[WorkloadRecord],
            damaged: list[tuple[Path, str]]) -> None:
    names, unreadable = ctx.images.records.mirror.scan(ImageNames)
    damaged += unreadable
    by_id = {copy.id: copy for copy in names}
    known = {record.id for record, _ in ctx.images.list()}
    run_as = {w.plan.image_id: w.plan.image for w in workloads}
    for config_digest, manifests in _manifests(ctx).items():
        if config_digest in known:
            continue
        copy = by_id.get(config_digest)
        chosen = next((m for m in manifests if copy and m[0] == copy.manifest_digest), manifests[0])
        subject = f"image {config_digest}"
        missing = _missing_blobs(ctx, chosen[1])
        if missing:
            found.add(Severity.LOST, subject, f"its manifest is in the blob store, but not blobs {', '.join(missing)}")
            continue
        if not rebuild:
            _pending(found, subject, "it is in the blob store but has no record")
            continue
        tags = list(copy.names) if copy else _tag_from(run_as.get(config_digest))
        digests = [(d.repository, d.digest) for d in copy.digests] if copy else []
        try:
            ctx.images.commit(chosen[2], tags, platform=_platform(ctx, config_digest), digests=digests)
        except (IsoboxError, OSError) as exc:
            found.add(Severity.LOST, subject, f"not recovered: {exc}")
            continue
        named = ", ".join(tags) if tags else "untagged (its name is not known)"
        found.add(Severity.REPAIRED, subject, f"recovered from the blob store: {named}")
    recorded = {record.id for record, _ in ctx.images.list()}
    for workload in workloads:
        if workload.plan.image_id not in recorded and workload.plan.disk_boot is None:
            found.add(Severity.LOST, f"workload {workload.name}",
                      f"its image {workload.plan.image} ({workload.plan.image_id}) is not in the blob store")


def _manifests(ctx: Context) -> dict[str, list[tuple[str, dict[str, Any], bytes]]]:
    """The image manifests in the blob store, by the config digest they name: (digest, document, bytes)."""
    found: dict[str, list[tuple[str, dict[str, Any], bytes]]] = {}
    for digest in sorted(ctx.images.blobs.all_digests()):
        path = ctx.images.blobs.path(digest)
        try:
            if path.stat().st_size > MAX_MANIFEST_BYTES:
                continue
            data = path.read_bytes()
            document = json.loads(data)
        except (OSError, ValueError):
            continue  # a layer, or not JSON: not a manifest
        config = document.get("config") if isinstance(document, dict) else None
        if not isinstance(config, dict) or not isinstance(document.get("layers"), list):
            continue  # an index, a config, or some other JSON
        config_digest = config.get("digest")
        if isinstance(config_digest, str):
            found.setdefault(config_digest, []).append((digest, document, data))
    return found


def _missing_blobs(ctx: Context, manifest: dict[str, Any]) -> list[str]:
    wanted = [manifest["config"].get("digest")] + [
        layer.get("digest") for layer in manifest["layers"] if isinstance(layer, dict)
    ]
    missing = []
    for digest in wanted:
        try:
            present = isinstance(digest, str) and ctx.images.blobs.has(digest)
        except IsoboxError:
            present = False
        if not present:
            missing.append(str(digest))
    return missing


def _platform(ctx: Context, config_digest: str) -> str:
    from isobox.images import platform as platforms

    try:
        config = json.loads(ctx.images.blobs.read(config_digest, max_bytes=MAX_CONFIG_BYTES))
        return str(platforms.from_config(config))
    except (IsoboxError, ValueError, AttributeError):
        return str(platforms.host())


def _tag_from(name: str | None) -> list[str]:
    """The name a workload was run with, as a tag, unless it was an id or a digest."""
    if not name:
        return []
    try:
        ref = reference.parse(name)
    except IsoboxError:
        return []
    hexpart = name.removeprefix("sha256:")
    if ref.digest or (len(hexpart) >= 12 and all(c in "0123456789abcdef" for c in hexpart)):
        return []
    return [str(ref)]


# ---- volumes --------------------------------------------------------------------------------------


def _volumes(ctx: Context, found: Findings, rebuild: bool, damaged: list[tuple[Path, str]]) -> None:
    from isobox.storage.volumes import DISK_FILE

    rows, unreadable = ctx.records.volumes.mirror.scan(VolumeRow)
    damaged += unreadable
    copies = {row.name: row for row in rows}
    known = {row.name for row in ctx.records.volumes.all()}
    directory = ctx.paths.lib / "volumes"
    for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
        if entry.name in known or entry.name.startswith(".") or not entry.is_dir():
            continue
        subject = f"volume {entry.name}"
        if not rebuild:
            _pending(found, subject, "its directory has no record")
            continue
        row = copies.get(entry.name)
        if row is None:
            options = (("type", "disk"),) if (entry / DISK_FILE).exists() else ()
            row = VolumeRow(entry.name, bool(_ANONYMOUS.match(entry.name)), entry.stat().st_mtime, (), options)
        ctx.records.volumes.restore(row)
        found.add(Severity.REPAIRED, subject, "recovered from lib/volumes" + (" and its JSON copy" if
                                                                             entry.name in copies else ""))


# ---- workloads ------------------------------------------------------------------------------------


def _workload_copies(ctx: Context, damaged: list[tuple[Path, str]]) -> list[WorkloadRecord]:
    from isobox.model.migrate import upgrade

    copies, unreadable = ctx.records.workloads.mirror.scan(WorkloadRecord)
    damaged += unreadable
    return [upgrade(copy) for copy in copies]


def _workloads(ctx: Context, found: Findings, rebuild: bool, copies: list[WorkloadRecord]) -> None:
    known = {record.id for record in ctx.records.workloads.all()}
    for copy in copies:
        if copy.id in known:
            continue
        subject = f"workload {copy.name}"
        if not rebuild:
            _pending(found, subject, "it has a JSON copy but no record")
            continue
        ctx.records.workloads.restore(copy)
        if ctx.records.workloads.find(copy.id) is None:
            taken = ctx.records.workloads.find(copy.name)
            why = f"its name is taken by workload {taken.short_id}" if taken else "its uid range is taken"
            found.add(Severity.LOST, subject, f"not recovered: {why}; its files stay in {copy.plan.workload_dir}")
            continue
        found.add(Severity.REPAIRED, subject, f"recovered from its JSON copy (as {copy.status.value})")
    recorded = {record.id: record for record in ctx.records.workloads.all()}
    if rebuild:
        for record in recorded.values():
            _endpoints(ctx, found, record)
    directory = ctx.paths.workloads
    accounted = set(recorded) | {copy.id for copy in copies}
    for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
        if entry.name not in accounted and not entry.name.startswith("."):
            found.add(Severity.LOST, f"workload directory {entry}",
                      "it has no record and no JSON copy: isobox cannot manage it; once nothing runs from it "
                      "(no conmon or QEMU with its id), remove the directory")


def _endpoints(ctx: Context, found: Findings, record: WorkloadRecord) -> None:
    """A workload's places on its networks, from its plan (the first interface carries the ports)."""
    network = record.plan.network
    if network is None:
        return
    have = {e.interface.network_id for e in ctx.records.networks.endpoints(workload_id=record.id)}
    networks = {n.id for n in ctx.records.networks.all()}
    for index, interface in enumerate(network.interfaces):
        if interface.network_id in have:
            continue
        if interface.network_id not in networks:
            found.add(Severity.LOST, f"workload {record.name}",
                      f"it was on network {interface.network}, which has no record: `isobox rm -f {record.name}`")
            continue
        endpoint = Endpoint(record.id, record.name, interface, record.kind.value, network.ports if index == 0 else ())
        ctx.records.networks.restore_endpoint(endpoint)
        found.add(Severity.REPAIRED, f"workload {record.name}",
                  f"its address {interface.ip} on network {interface.network} recorded again")
