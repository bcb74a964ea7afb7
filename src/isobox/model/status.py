"""Lifecycle of a workload: the states, and which operation is allowed in which state."""

from __future__ import annotations

import enum

from isobox.errors import InvalidStateError


class Status(enum.StrEnum):
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


ALLOWED: dict[Op, frozenset[Status]] = {
    Op.START: frozenset({Status.CREATED, Status.EXITED}),
    Op.STOP: frozenset({Status.RUNNING, Status.PAUSED}),
    Op.KILL: frozenset({Status.RUNNING, Status.PAUSED}),
    Op.EXEC: frozenset({Status.RUNNING}),
    Op.REMOVE: frozenset({Status.CREATED, Status.EXITED, Status.REMOVING}),
    Op.FORCE_REMOVE: frozenset(Status),
    Op.SNAPSHOT: frozenset({Status.RUNNING, Status.PAUSED, Status.EXITED, Status.CREATED}),
    Op.RESTART: frozenset(Status) - {Status.REMOVING},
    Op.PAUSE: frozenset({Status.RUNNING}),
    Op.UNPAUSE: frozenset({Status.PAUSED}),
    Op.ATTACH: frozenset({Status.RUNNING}),
}

TRANSITIONS: dict[Status, frozenset[Status]] = {
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
