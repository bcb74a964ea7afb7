"""What every handler shares: the worker threads, the server's settings and what it keeps in memory (attaches
waiting for their container's start, exec instances); and the one route table."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from isobox.api.routing import Router
from isobox.api.workers import Workers
from isobox.model.streams import ExecSpec

KEEP_FINISHED_EXECS_S = 600.0  # dockerd forgets an exec instance a while after it ended, too


@dataclass
class PendingAttach:
    """An attach waiting for its container's start (api/attach.py)."""

    go: threading.Event = field(default_factory=threading.Event)  # set by POST /start
    done: threading.Event = field(default_factory=threading.Event)  # the attached start returned or failed
    error: BaseException | None = None


@dataclass
class ExecInstance:
    """An exec made by POST /containers/{id}/exec: kept by the server, as dockerd keeps them per daemon."""

    id: str
    container_id: str
    spec: ExecSpec
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    detach_keys: str = ""
    console_size: tuple[int, int] | None = None
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    ended_at: float | None = None
    terminal: int | None = None  # the pseudo-terminal's master while an exec with -t runs


@dataclass
class App:
    workers: Workers
    insecure_registries: tuple[str, ...] = ()  # besides loopback registries, which are always insecure
    started_at: float = field(default_factory=time.time)
    attaches: dict[str, PendingAttach] = field(default_factory=dict)  # by container id
    execs: dict[str, ExecInstance] = field(default_factory=dict)

    def forget_old_execs(self) -> None:
        now = time.time()
        for key in [k for k, e in self.execs.items() if e.ended_at and now - e.ended_at > KEEP_FINISHED_EXECS_S]:
            del self.execs[key]


def build_router() -> Router:
    from isobox.api import (
        archive,
        attach,
        build,
        container_changes,
        container_io,
        containers,
        events,
        execs,
        images,
        networks,
        system,
        volumes,
    )

    # Order matters where patterns overlap: each module lists its fixed paths before its patterns.
    return Router(system.routes, events.routes, containers.routes, attach.routes, execs.routes, archive.routes,
                  container_changes.routes, container_io.routes, images.routes, networks.routes, volumes.routes,
                  build.routes)
