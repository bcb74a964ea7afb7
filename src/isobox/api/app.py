"""What every handler shares: the worker threads and the server's settings; and the one route table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from isobox.api.routing import Router
from isobox.api.workers import Workers


@dataclass
class App:
    workers: Workers
    insecure_registries: tuple[str, ...] = ()  # besides loopback registries, which are always insecure
    started_at: float = field(default_factory=time.time)


def build_router() -> Router:
    from isobox.api import build, container_io, containers, images, networks, system, volumes

    # Order matters where patterns overlap: each module lists its fixed paths before its patterns.
    return Router(system.routes, containers.routes, container_io.routes, images.routes, networks.routes,
                  volumes.routes, build.routes)
