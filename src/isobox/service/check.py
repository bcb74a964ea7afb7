"""`isobox system check [--repair]`: is isobox's state sound, and rebuilding its records from what is on disk.

What is checked: the database (PRAGMA integrity_check, its schema version), that each record's files exist
(a workload's directory, an image's blobs and unpacked layers, a volume's data), and what is on disk without
a record (image manifests in the blob store, volume directories, the JSON copies of workloads and networks
in lib/records/, workload directories). Damaged JSON copies are reported, never a traceback.

A damaged, empty or missing database beside content is moved aside (state.db.damaged-TIME, with its WAL)
and rebuilt at once, as the StateError isobox stops with says; with ``repair``, a sound database also gets
what it lacks. The rebuilding itself is in service/recovery.py. What cannot be recovered is said, with
what to do about it.

Run it while no other isobox command runs: it reads the records as a whole.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from isobox.config import paths_from_env
from isobox.errors import IsoboxError, StateError
from isobox.service.context import Context, open_context
from isobox.state import dbfile as database


class Severity(enum.StrEnum):
    PROBLEM = "problem"  # found, not changed (run with --repair)
    REPAIRED = "repaired"
    LOST = "lost"  # cannot be recovered: the message says what to do


@dataclass(frozen=True)
class Finding:
    severity: Severity
    subject: str  # "image sha256:…", "volume data", "workload web", "record copy …"
    message: str


@dataclass
class Findings:
    """What a check found, as it goes (the recovery steps add to it)."""

    items: list[Finding] = field(default_factory=list)

    def add(self, severity: Severity, subject: str, message: str) -> None:
        self.items.append(Finding(severity, subject, message))


@dataclass(frozen=True)
class CheckReport:
    database: str  # what the database was found to be
    rebuilt: bool  # a new database was made and filled from what is on disk
    moved_to: str | None  # where the damaged database went
    findings: tuple[Finding, ...]

    @property
    def clean(self) -> bool:
        """Nothing left to repair and nothing lost (what was repaired now counts as clean)."""
        return all(f.severity is Severity.REPAIRED for f in self.findings)


def check(root: str | os.PathLike[str] | None = None, *, repair: bool = False) -> CheckReport:
    from isobox.service import recovery

    paths = paths_from_env(root)
    paths.ensure()
    verdict, detail = database.examine(paths.db)
    if verdict is database.Verdict.NEWER:
        raise StateError(f"the state database was written by a newer isobox: {detail}", op="system check",
                         path=str(paths.db))
    moved: Path | None = None
    unsound = verdict is not database.Verdict.SOUND
    if verdict in (database.Verdict.DAMAGED, database.Verdict.EMPTY):
        moved = database.move_aside(paths.db, time.strftime("%Y%m%dT%H%M%S"))
    found = Findings()
    ctx = open_context(root, allow_empty=True)
    try:
        recovery.recover(ctx, found, rebuild=unsound or repair)
        _check_files(ctx, found, repair=repair or unsound)
    finally:
        ctx.close()
    described = f"{verdict.value}: {detail}" if unsound else f"sound ({detail})"
    return CheckReport(described, unsound, str(moved) if moved else None, tuple(found.items))


def _check_files(ctx: Context, found: Findings, *, repair: bool) -> None:
    """Records whose files are gone: layers are unpacked again from their blobs with ``repair``; the rest
    is said, with what to do."""
    for image, names in ctx.images.list():
        subject = f"image {names[0] if names else image.short_id}"
        wanted = (image.id, *(layer.digest for layer in image.layers))
        missing_blobs = [digest for digest in wanted if not ctx.images.blobs.has(digest)]
        if missing_blobs:
            found.add(Severity.LOST, subject, f"blobs {', '.join(missing_blobs)} are gone: remove it "
                      "(`isobox rmi`) and pull or load it again")
            continue
        for layer in image.layers:
            if (ctx.images.layer_dir(layer.chain_id) / "diff").is_dir():
                continue
            if not repair:
                found.add(Severity.PROBLEM, subject, f"layer {layer.digest} is not unpacked")
                continue
            try:
                ctx.images.ensure_layer(layer)
                found.add(Severity.REPAIRED, subject, f"layer {layer.digest} unpacked again from its blob")
            except (IsoboxError, OSError) as exc:  # a finding, never a traceback
                found.add(Severity.LOST, subject, f"layer {layer.digest} cannot be unpacked: {exc}")
    for record in ctx.records.workloads.all():
        if not Path(record.plan.workload_dir).is_dir():
            found.add(Severity.LOST, f"workload {record.name}",
                      f"its directory {record.plan.workload_dir} is gone: remove it (`isobox rm -f {record.name}`)")
    volumes_dir = ctx.paths.lib / "volumes"
    for row in ctx.records.volumes.all():
        if not (volumes_dir / row.name).is_dir():
            found.add(Severity.LOST, f"volume {row.name}",
                      f"its directory {volumes_dir / row.name} is gone: remove it (`isobox volume rm {row.name}`)")
