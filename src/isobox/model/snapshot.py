"""What a snapshot holds, the same words for both kinds of workload."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SnapshotContent(enum.StrEnum):
    FILES = "writable layer"  # a container's writable layer
    FILES_AND_PROCESSES = "writable layer+processes"  # … and its processes (CRIU)
    DISK = "disk"  # a VM's root disk
    DISK_AND_MEMORY = "disk+memory"  # … and its memory and device state

    @property
    def resumes(self) -> bool:
        """Restoring it makes the workload continue where it was (rather than start over)."""
        return self in (SnapshotContent.FILES_AND_PROCESSES, SnapshotContent.DISK_AND_MEMORY)


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    content: SnapshotContent
    created_at: float
    size_bytes: int = 0  # a VM's saved memory and device state, or a container's layer archive (+ CRIU images)
    note: str = ""  # why a running workload's processes or memory were not saved with it
