"""The layer of a planned COPY or ADD (builder/copy.py): its files and directories as tar entries, owners and
modes as the plan says, ADD's archives extracted, and every directory on the way to them written as the
image has it (or created: 0755, owned by the --chown user), so the layer never resets what it goes
through (a /tmp stays 1777).
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from isobox.builder.copy import CopyPlan, Placement, PlacementKind, join, kind_of
from isobox.builder.tree import Entry, Escape, LayeredTree
from isobox.images.layer_limits import UnpackPolicy

if TYPE_CHECKING:
    import tarfile

    from isobox.builder.layertar import TarSink

__all__ = ["write_copy"]


@dataclass
class _Writer:
    plan: CopyPlan
    image: LayeredTree | None
    mtime: int  # of what has no time of its own (heredoc files, created directories)
    scratch: Path
    policy: UnpackPolicy

    def __post_init__(self) -> None:
        self.items: dict[str, tuple[tarfile.TarInfo, Path | bytes | None]] = {}

    def owner(self, info: os.stat_result | None) -> tuple[int, int]:
        if self.plan.owner is not None:
            return self.plan.owner
        return (info.st_uid, info.st_gid) if info is not None else (0, 0)

    def add_entry(self, path: str, entry: Entry, *, keep_owner: bool = False) -> None:
        import tarfile

        info = tarfile.TarInfo(path)
        uid, gid = self.owner(entry.info if keep_owner else None)
        mode = self.plan.chmod if self.plan.chmod is not None else stat.S_IMODE(entry.info.st_mode)
        info.uid, info.gid, info.mode, info.mtime = uid, gid, mode, int(entry.info.st_mtime)
        if entry.is_dir:
            info.type = tarfile.DIRTYPE
            self.items[path] = (info, None)
        elif entry.is_symlink:
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(entry.host), 0o777
            self.items[path] = (info, None)
        elif entry.is_file:
            self.items[path] = (info, entry.host)

    def add_data(self, path: str, data: Path | bytes, mode: int, mtime: int) -> None:
        import tarfile

        info = tarfile.TarInfo(path)
        info.uid, info.gid = self.owner(None)
        info.mode = self.plan.chmod if self.plan.chmod is not None else mode
        info.mtime = mtime
        if isinstance(data, bytes):
            info.size = len(data)
        self.items[path] = (info, data)

    def extract(self, placement: Placement) -> None:
        from isobox.builder.archives import extract

        assert placement.entry is not None
        target = Path(tempfile.mkdtemp(dir=self.scratch, prefix="add-"))
        extract(placement.entry.host, target, scratch=self.scratch, policy=self.policy,
                what=f"archive {placement.entry.path}")
        tree = LayeredTree([target], escape=Escape.SCOPE, what=f"archive {placement.entry.path}")
        for child in tree.walk(tree.root()):
            if kind_of(child) is not None:
                self.add_entry(join(placement.path, child.path), child, keep_owner=True)

    def place(self, placement: Placement) -> None:
        if placement.kind is PlacementKind.ARCHIVE:
            self.extract(placement)
        elif placement.kind is PlacementKind.INLINE:
            self.add_data(placement.path, placement.data, 0o644, self.mtime)
        elif placement.kind is PlacementKind.DOWNLOAD:
            download = placement.download
            assert download is not None
            mtime = download.mtime if download.mtime is not None else self.mtime
            self.add_data(placement.path, download.path, 0o600, mtime)
        else:
            assert placement.entry is not None
            self.add_entry(placement.path, placement.entry)

    def parents(self) -> None:
        """Every directory on the way: as the image has it, else created."""
        from isobox.builder.layertar import dir_info

        wanted = set(self.plan.dirs)
        for path in list(self.items):
            parts = path.split("/")
            wanted.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        for path in sorted(wanted - {""} - set(self.items)):
            found = self.image.resolve(path, follow=False) if self.image is not None else None
            if found is not None and found.is_dir:
                info = found.info
                entry = dir_info(path, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, int(info.st_mtime))
            else:
                uid, gid = self.owner(None)
                entry = dir_info(path, 0o755, uid, gid, self.mtime)
            self.items[path] = (entry, None)

    def write(self, sink: TarSink) -> None:
        import tarfile

        for path in sorted(self.items):
            info, data = self.items[path]
            if isinstance(data, Path):
                info.type = tarfile.REGTYPE
                sink.add_file(info, data)
            elif isinstance(data, bytes):
                sink.add(info, io.BytesIO(data))
            else:
                sink.add(info)


def write_copy(plan: CopyPlan, sink: TarSink, *, image: LayeredTree | None, scratch: Path, policy: UnpackPolicy,
               epoch: int | None) -> None:
    """The layer of a planned COPY or ADD, into ``sink``."""
    writer = _Writer(plan, image, epoch if epoch is not None else int(time.time()), scratch, policy)
    for placement in plan.placements:
        writer.place(placement)
    writer.parents()
    writer.write(sink)
