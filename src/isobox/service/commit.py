"""`isobox commit`: a workload's changes become a new image layer on top of its image.

The driver hands the changes over as an uncompressed layer tar (a container's overlay upper directory; a
stopped VM's disk compared with its image's, see drivers/vm/commit.py); this module stores it as a blob and
records the new image (config with a new diff_id and history entry, an OCI manifest).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import tempfile

from isobox.drivers import base as drivers
from isobox.errors import HostError
from isobox.images import reference
from isobox.images.content import sha256_digest
from isobox.images.store import OCI_CONFIG, OCI_MANIFEST, ImageRecord
from isobox.model.capability import Capability
from isobox.model.record import WorkloadRecord
from isobox.model.status import Op, require
from isobox.service import workloads
from isobox.service.context import Context
from isobox.state.locks import locked

_OCI_LAYER_TYPES = {  # the new manifest is OCI: name Docker-typed parent layers by their OCI equivalents
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    ),
}

# Mount points whose upper-dir entries are placeholders the runtime mounted over.
RUNTIME_MOUNTS = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/proc", "/sys", "/dev"})


def commit(ctx: Context, name_or_id: str, image: str, *, message: str = "", author: str = "") -> ImageRecord:
    record = workloads.get(ctx, name_or_id)
    require(Op.COMMIT, record.status, workload=record.name)
    drivers.require(workloads.driver_for(ctx, record.kind), record, Capability.COMMIT, op="commit")
    target = str(reference.parse(image))
    parent = ctx.images.get(record.plan.image_id)
    # Blobs written here are unreferenced until ctx.images.commit records the image: hold gc off meanwhile.
    with locked(ctx.paths.locks, "gc", shared=True):
        try:
            return _commit_locked(ctx, record, parent, target, message, author)
        except OSError as exc:
            # A full disk, most likely. The temporary layer is gone with its file; blobs written before
            # the failure are unreferenced and go with the next `image prune`/gc; no image was recorded.
            from isobox.linux.fs import is_full, mount_point

            where = mount_point(exc.filename or ctx.paths.tmp)  # the layer is written in lib/tmp
            why = (f"the file system at {where} is full: free space there (e.g. `isobox system prune`)"
                   if is_full(exc) else str(exc.strerror or exc))
            raise HostError(
                f"cannot write the new layer: {why}",
                op="commit",
                id=record.name,
                path=exc.filename or "",
            ) from exc


def _commit_locked(
    ctx: Context, record: WorkloadRecord, parent: ImageRecord, target: str, message: str, author: str
) -> ImageRecord:
    skip = RUNTIME_MOUNTS | {m.target for m in record.plan.mounts}
    with tempfile.TemporaryFile(dir=ctx.paths.tmp) as tar:
        workloads.driver_for(ctx, record.kind).commit_layer(record, tar, skip)
        tar.seek(0)
        raw = tar.read()
    diff_id = sha256_digest(raw)
    blob = gzip.compress(raw, compresslevel=6, mtime=0)
    layer_digest = ctx.images.blobs.put_bytes(blob)
    config = ctx.images.config_document(parent)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config["created"] = now
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
    config.setdefault("history", []).append(
        {"created": now, "created_by": f"isobox commit {record.name}", "comment": message, "author": author}
    )
    if author:
        config["author"] = author
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = ctx.images.blobs.put_bytes(config_bytes)
    manifest = json.loads(ctx.images.blobs.read(parent.manifest_digest))
    layers = [
        {**layer, "mediaType": _OCI_LAYER_TYPES.get(layer["mediaType"], layer["mediaType"])}
        for layer in manifest.get("layers") or []
    ]
    layers.append(
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": len(blob)}
    )
    new_manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": layers,
    }
    return ctx.images.commit(json.dumps(new_manifest).encode(), [target])
