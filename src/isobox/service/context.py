"""One Context per isobox process (or per worker thread of a server): the state paths, the database and its
repositories, the image store, the drivers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from isobox.config import Paths, paths_from_env
from isobox.errors import HostError
from isobox.images.store import ImageStore
from isobox.state.db import Database
from isobox.state.events import EventRepository
from isobox.state.networks import NetworkRepository
from isobox.state.volumes import VolumeRepository
from isobox.state.workloads import WorkloadRepository


@dataclass(frozen=True)
class Records:
    """The repositories of the records isobox keeps (state/), over one database."""

    workloads: WorkloadRepository
    networks: NetworkRepository
    volumes: VolumeRepository
    events: EventRepository


@dataclass
class Context:
    paths: Paths
    db: Database
    images: ImageStore
    records: Records
    _drivers: dict[str, object] = field(default_factory=dict)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def open_database(paths: Paths, *, allow_empty: bool = False) -> Database:
    """The root's database; refuses an empty or missing one while content exists beside it (state/db.py)."""
    content = (paths.blobs, paths.workloads, paths.lib / "volumes")
    return Database(Path(paths.db), content_dirs=content, allow_empty=allow_empty)


def open_context(
    root: str | os.PathLike[str] | None = None, *, require_root: bool = True, allow_empty: bool = False
) -> Context:
    if require_root and os.geteuid() != 0:
        raise HostError("isobox needs root (namespaces, mounts, cgroups, network devices)", op="open state")
    paths = paths_from_env(root)
    paths.ensure()
    db = open_database(paths, allow_empty=allow_empty)
    records = Records(
        workloads=WorkloadRepository(db, paths.records / "workloads"),
        networks=NetworkRepository(db, paths.records / "networks"),
        volumes=VolumeRepository(db, paths.records / "volumes"),
        events=EventRepository(db),
    )
    return Context(paths=paths, db=db, images=ImageStore(paths, db), records=records)
