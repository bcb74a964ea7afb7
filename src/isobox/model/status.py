"""Lifecycle of a workload: the states, and which operation is allowed in which state."""

from __future__ import annotations

import enum

from isobox.errors import InvalidStateError


class Status(enum.StrEnum):
    CREATING = "creating"  # name reserved, being made: a crash here leaves a record `rm -f` and `prune` finish
    CREATED = "created"  # rootfs and config prepared, nothing running
    RUNNING = "running"
    PAUSED = "paused"
    EXITED = "exited"  # the workload ended (exit code recorded)
    REMOVING = "removing"  # rm in progress; a crash here is finished by `rm -f`


class Op(enum.StrEnum):
    START = "start"
    STOP = "stop"
    KILL = "kill"
    EXEC = "exec"
    REMOVE = "remove"
    FORCE_REMOVE = "force remove"
    SNAPSHOT = "snapshot"
    RESTART = "restart"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    ATTACH = "attach"
    COMMIT = "commit"
    RENAME = "rename"


_MADE = frozenset(Status) - {Status.CREATING, Status.REMOVING}

ALLOWED: dict[Op, frozenset[Status]] = {
    Op.START: frozenset({Status.CREATED, Status.EXITED}),
    # Stopping a workload that does not run succeeds and does nothing, as Docker's (the API says 304).
    Op.STOP: _MADE,
    Op.KILL: frozenset({Status.RUNNING, Status.PAUSED}),
    Op.EXEC: frozenset({Status.RUNNING}),
    Op.REMOVE: frozenset({Status.CREATING, Status.CREATED, Status.EXITED, Status.REMOVING}),
    Op.FORCE_REMOVE: frozenset(Status),
    Op.SNAPSHOT: _MADE,
    Op.RESTART: _MADE,
    Op.PAUSE: frozenset({Status.RUNNING}),
    Op.UNPAUSE: frozenset({Status.PAUSED}),
    Op.ATTACH: frozenset({Status.RUNNING}),
    Op.COMMIT: _MADE,
    Op.RENAME: frozenset(Status) - {Status.REMOVING},
}

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.CREATING: frozenset({Status.CREATED, Status.REMOVING}),
    Status.CREATED: frozenset({Status.RUNNING, Status.EXITED, Status.REMOVING}),
    Status.RUNNING: frozenset({Status.EXITED, Status.PAUSED, Status.REMOVING}),
    Status.PAUSED: frozenset({Status.RUNNING, Status.EXITED, Status.REMOVING}),
    Status.EXITED: frozenset({Status.RUNNING, Status.REMOVING}),
    Status.REMOVING: frozenset({Status.REMOVING}),
}


def require(op: Op, status: Status, *, workload: str) -> None:
    """Raise InvalidStateError unless ``op`` is allowed while the workload is ``status``."""
    if status not in ALLOWED[op]:
        allowed = ", ".join(sorted(s.value for s in ALLOWED[op]))
        raise InvalidStateError(
            f"cannot {op.value} workload {workload}: it is {status.value} (allowed when {allowed})",
            op=op.value,
            id=workload,
        )


def can_transition(old: Status, new: Status) -> bool:
    return new in TRANSITIONS[old]
