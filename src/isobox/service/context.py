"""One Context per isobox process: the state paths, the database, the image store, the drivers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from isobox.config import Paths, paths_from_env
from isobox.errors import HostError
from isobox.images.store import ImageStore
from isobox.state.db import Database


@dataclass
class Context:
    paths: Paths
    db: Database
    images: ImageStore
    _drivers: dict[str, object] = field(default_factory=dict)

    def close(self) -> None:
        self.db.close()


def open_context(root: str | os.PathLike[str] | None = None, *, require_root: bool = True) -> Context:
    if require_root and os.geteuid() != 0:
        raise HostError("isobox needs root (namespaces, mounts, cgroups, network devices)", op="open state")
    paths = paths_from_env(root)
    paths.ensure()
    db = Database(Path(paths.db))
    return Context(paths=paths, db=db, images=ImageStore(paths, db))
