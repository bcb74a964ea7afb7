"""After a workload exits: removing a --rm workload that nobody removed, whoever notices first (the engine's
exits task, or the next command that lists workloads without an engine), and removing one whose attached
run another process may have removed already."""

from __future__ import annotations

import logging
import time

from isobox.errors import InvalidStateError, NotFoundError
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind
from isobox.model.status import Status
from isobox.service.context import Context
from isobox.service.workloads import remove

log = logging.getLogger(__name__)

AUTO_REMOVE_GRACE_S = 3.0  # time for a foreground run (or conmon's exit command) to remove its own --rm workload


def remove_exited(ctx: Context, record: WorkloadRecord, *, kinds: tuple[Kind, ...] = (Kind.VM,)) -> bool:
    """Remove a --rm workload that exited a while ago and that nobody removed (a detached VM has no conmon
    exit command: the engine, or the next isobox command that sees the exit, does it). True if removed."""
    if record.kind not in kinds or record.status is not Status.EXITED or not record.plan.remove:
        return False
    if time.time() - (record.finished_at or 0.0) < AUTO_REMOVE_GRACE_S:
        return False
    try:
        remove(ctx, record.id, force=True)
    except (NotFoundError, InvalidStateError):
        return True  # removed (or restarted) by another process meanwhile
    except Exception as exc:  # a listing must not fail because a cleanup did
        log.warning("could not remove %s after it exited: %s", record.name, exc)
        return False
    return True


def remove_if_present(ctx: Context, workload_id: str) -> None:
    """--rm after an attached run: another isobox process (or the engine) may have removed it already."""
    try:
        remove(ctx, workload_id, force=True)
    except NotFoundError:
        pass
