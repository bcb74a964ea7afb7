"""`isobox commit`: a container's changes become a new image layer on top of its image."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import tempfile
from pathlib import Path

from isobox.errors import InvalidArgumentError
from isobox.images import reference
from isobox.images.content import sha256_digest
from isobox.images.layerdiff import write_layer
from isobox.images.store import OCI_CONFIG, OCI_MANIFEST, ImageRecord
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind
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
    if record.kind is not Kind.CONTAINER:
        raise InvalidArgumentError(
            f"commit of {record.kind.value} workloads is not supported yet (containers only)",
            op="commit",
            id=record.name,
        )
    target = str(reference.parse(image))
    parent = ctx.images.get(record.plan.image_id)
    # Blobs written here are unreferenced until ctx.images.commit records the image: hold gc off meanwhile.
    with locked(ctx.paths.locks, "gc", shared=True):
        return _commit_locked(ctx, record, parent, target, message, author)


def _commit_locked(
    ctx: Context, record: WorkloadRecord, parent: ImageRecord, target: str, message: str, author: str
) -> ImageRecord:
    upper = Path(record.plan.workload_dir) / "upper"
    skip = RUNTIME_MOUNTS | {m.target for m in record.plan.mounts}
    with tempfile.TemporaryFile(dir=ctx.paths.tmp) as tar:
        write_layer(upper, tar, skip=skip)
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
