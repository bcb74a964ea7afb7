"""`isobox commit`: a workload's changes become a new image layer on top of its image.

A container's changes are its overlay upper directory. A VM's are read from its root disk, which
has no upper directory: the stopped VM's qcow2 overlay is flattened to a raw copy, the copy is
checked and repaired by e2fsck in user space (the guest wrote that file system, so the host kernel
only mounts it once it is known to be sound), mounted read-only (noload: no journal replay) next to
the image's own base disk, and the two trees are compared (layerdiff.write_diff).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import tempfile
from pathlib import Path
from typing import BinaryIO

from isobox.command import run
from isobox.errors import HostError, InvalidArgumentError, InvalidStateError
from isobox.images import reference
from isobox.images.content import sha256_digest
from isobox.images.layerdiff import write_diff, write_layer
from isobox.images.store import OCI_CONFIG, OCI_MANIFEST, ImageRecord
from isobox.linux.mount import mount_image_readonly, umount
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind
from isobox.model.status import Status
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
    target = str(reference.parse(image))
    if record.kind is Kind.VM:
        from isobox.drivers.vm import anyos

        if anyos.is_disk_vm(record.plan):
            raise InvalidArgumentError(
                "a VM booted from a disk image has no OCI image to add a layer to", op="commit", id=record.name
            )
        if workloads.refresh(ctx, record).status in (Status.RUNNING, Status.PAUSED):
            raise InvalidStateError(
                "stop the VM first: its disk is only consistent once the guest has shut down",
                op="commit",
                id=record.name,
            )
    parent = ctx.images.get(record.plan.image_id)
    # Blobs written here are unreferenced until ctx.images.commit records the image: hold gc off meanwhile.
    with locked(ctx.paths.locks, "gc", shared=True):
        try:
            return _commit_locked(ctx, record, parent, target, message, author)
        except OSError as exc:
            # A full disk, most likely. The temporary layer is gone with its file; blobs written before
            # the failure are unreferenced and go with the next `image prune`/gc; no image was recorded.
            raise HostError(
                f"cannot write the new layer: {exc.strerror or exc}",
                op="commit",
                id=record.name,
                path=exc.filename or "",
            ) from exc


# The root disk's own file system directory (mkfs.ext4), not image content.
VM_INIT_PATHS = frozenset({"/lost+found"})


def _write_vm_diff(ctx: Context, record: WorkloadRecord, out: BinaryIO, skip: frozenset[str]) -> None:
    from isobox.drivers.vm import qemu_args, rootdisk

    disk = qemu_args.VMFiles.of(record.plan.workload_dir, record.id, ctx.paths.run).disk
    base = rootdisk.ensure_base(ctx.paths.cache, ctx.paths.locks, record.plan.image_id, record.plan.layers)
    ctx.paths.tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ctx.paths.tmp, prefix="commit-") as scratch:
        flat = Path(scratch) / "disk.raw"
        run(
            ["qemu-img", "convert", "-U", "-O", "raw", str(disk), str(flat)],
            op="commit VM disk",
            path=str(disk),
            timeout_s=3600,
        )
        # -y on the private copy: repairs what an unclean stop left (exit 1: corrected), refuses worse.
        run(["e2fsck", "-f", "-y", str(flat)], op="commit VM disk", path=str(disk), ok=(0, 1), timeout_s=3600)
        mounts = [(flat, Path(scratch) / "new"), (base, Path(scratch) / "base")]
        mounted: list[Path] = []
        try:
            for image, point in mounts:
                point.mkdir()
                mount_image_readonly(str(image), str(point))
                mounted.append(point)
            write_diff(Path(scratch) / "base", Path(scratch) / "new", out, skip=skip)
        finally:
            for point in reversed(mounted):
                umount(str(point))


def _commit_locked(
    ctx: Context, record: WorkloadRecord, parent: ImageRecord, target: str, message: str, author: str
) -> ImageRecord:
    skip = RUNTIME_MOUNTS | {m.target for m in record.plan.mounts}
    with tempfile.TemporaryFile(dir=ctx.paths.tmp) as tar:
        if record.kind is Kind.VM:
            _write_vm_diff(ctx, record, tar, skip | VM_INIT_PATHS)
        else:
            write_layer(Path(record.plan.workload_dir) / "upper", tar, skip=skip)
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
