"""What a build reports while it runs, for the CLI's display, the HTTP API's JSON stream and Python callers.

Steps are numbered across the whole build as Docker's classic builder numbers them (``Step 3/9``): each
stage's FROM is a step, then its instructions (ONBUILD triggers of its base first), in build order.
Events of stages built side by side interleave; ``stage`` tells them apart.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BuildEvent", "EventKind", "ProgressFn"]


class EventKind(enum.StrEnum):
    STEP = "step"  # a step begins (``text``: the instruction as written)
    CACHED = "cached"  # its result came from the build cache
    RUNNING = "running"  # a RUN's workload was created (``workload``: its id)
    OUTPUT = "output"  # one line a RUN printed (``text``, without the newline)
    DONE = "done"  # the step is done (``duration_s``; ``layer``: the short digest of its layer, if any)
    WARNING = "warning"  # something the user should know (an unused build arg …)
    IMAGE = "image"  # the image is committed (``text``: its id; ``tags``)


@dataclass(frozen=True)
class BuildEvent:
    kind: EventKind
    number: int = 0  # 1-based, across the build; 0 for events that belong to no step
    total: int = 0
    stage: str = ""  # the stage's name, or "stage N"
    text: str = ""
    duration_s: float = 0.0
    workload: str = ""
    layer: str = ""
    tags: tuple[str, ...] = ()


ProgressFn = Callable[[BuildEvent], None]
