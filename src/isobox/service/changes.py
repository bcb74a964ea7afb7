"""`isobox diff` and `isobox export`: what a workload changed in its image's files, and its whole file system.

Both come from the driver, as for commit: the changes are the layer `commit_layer` writes (a container's overlay
upper directory; a stopped VM's disk compared with its image's), read back as Docker's A/C/D lines: a whiteout
is a deletion (D), an entry the image had is a change (C), any other an addition (A). A path the image had is
one the image's unpacked layers show, the topmost first, as overlayfs would (a 0/0 character device is a
whiteout, an opaque directory hides the layers below it).
"""

from __future__ import annotations

import enum
import os
import stat
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from isobox.drivers import base as drivers
from isobox.images.unpack import OPAQUE_MARKER, WHITEOUT_PREFIX
from isobox.model.capability import Capability
from isobox.model.status import Op, Status, require
from isobox.service import workloads
from isobox.service.commit import RUNTIME_MOUNTS
from isobox.service.context import Context


class ChangeKind(enum.StrEnum):
    ADDED = "A"
    CHANGED = "C"
    DELETED = "D"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    path: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.path}"


def _opaque(directory: Path) -> bool:
    try:
        return os.getxattr(directory, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def in_image(layers: Sequence[str], path: str) -> bool:
    """Whether the image (its unpacked layers, lowest first) has ``path``."""
    parts = [p for p in path.split("/") if p]
    for layer in reversed(layers):
        try:
            info = os.lstat(Path(layer, *parts))
        except OSError:
            info = None
        if info is not None:
            return not (stat.S_ISCHR(info.st_mode) and info.st_rdev == 0)
        if any(_opaque(Path(layer, *parts[:depth])) for depth in range(1, len(parts))):
            return False
    return False


def changes_of(layer_tar: BinaryIO, layers: Sequence[str]) -> list[Change]:
    """A layer tar's entries as changes to the image of ``layers``, sorted by path (as `docker diff`)."""
    found: dict[str, ChangeKind] = {}
    with tarfile.open(fileobj=layer_tar, mode="r|") as tar:
        for member in tar:
            name = "/" + member.name.strip("/").removeprefix("./")
            parent, _, base = name.rpartition("/")
            if base == OPAQUE_MARKER:
                continue  # the directory's own entry says it changed
            if base.startswith(WHITEOUT_PREFIX):
                found[f"{parent}/{base[len(WHITEOUT_PREFIX):]}"] = ChangeKind.DELETED
            else:
                found[name] = ChangeKind.CHANGED if in_image(layers, name) else ChangeKind.ADDED
    return [Change(kind, path) for path, kind in sorted(found.items())]


def diff(ctx: Context, name_or_id: str) -> list[Change]:
    """The workload's changes to its image's files (a VM's once it is stopped)."""
    record = workloads.get(ctx, name_or_id)
    require(Op.COMMIT, record.status, workload=record.name)
    driver = workloads.driver_for(ctx, record.kind)
    drivers.require(driver, record, Capability.COMMIT, op="diff")
    skip = RUNTIME_MOUNTS | {m.target for m in record.plan.mounts}
    ctx.paths.tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=ctx.paths.tmp) as layer:
        driver.commit_layer(record, layer, skip)
        layer.seek(0)
        return changes_of(layer, record.plan.layers)


def export(ctx: Context, name_or_id: str, out: BinaryIO) -> None:
    """The workload's file system as a tar on ``out`` (a VM's once it is stopped)."""
    record = workloads.get(ctx, name_or_id)
    if record.status in (Status.CREATING, Status.REMOVING):
        require(Op.COMMIT, record.status, workload=record.name)
    driver = workloads.driver_for(ctx, record.kind)
    drivers.require(driver, record, Capability.COMMIT, op="export")
    driver.export_filesystem(record, out)
