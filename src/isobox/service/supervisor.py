"""The engine's loop: a tuple of tasks ``(name, period_s, fn(ctx))``, each in a thread of its own with its own
Context. Every task is level-triggered (it reads the records and the real state, and acts to make them
agree) and idempotent; a failing run is logged, and the task runs again at its next period.

Tasks: health checks (service/health.py), and exits: a workload that ended while no isobox process noticed
is recorded (which writes its `die` event once), a --rm workload nobody removed is removed (a detached VM
has no conmon exit command), and a restart policy is applied to a workload nobody restarted (a container
whose conmon was killed, any VM).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isobox.model.spec import Kind
from isobox.service import health
from isobox.service.context import Context, open_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    name: str
    period_s: float
    run: Callable[[Context], None]


def reconcile_exits(ctx: Context) -> None:
    """Exits nobody handled: --rm workloads removed (a VM has no conmon exit command), and restart policies
    applied once their back-off has passed (service/restarts.py, which also serves `system boot`)."""
    from isobox.service import exits, restarts, workloads

    for record in workloads.list_workloads(ctx, all=True):  # refreshed: exits nobody saw are recorded
        exits.remove_exited(ctx, record, kinds=(Kind.VM, Kind.CONTAINER))
    restarts.reconcile(ctx)


TASKS = (
    Task("health", 0.5, health.run_due),
    Task("exits", 2.0, reconcile_exits),
)


class Supervisor:
    """Runs ``tasks`` until ``stop``: one thread per task, each with its own Context on ``root``."""

    def __init__(self, root: Path | None, tasks: tuple[Task, ...] = TASKS) -> None:
        self.root = root
        self.tasks = tasks
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for task in self.tasks:
            thread = threading.Thread(target=self._loop, args=(task,), name=f"isobox-{task.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self, task: Task) -> None:
        ctx = open_context(self.root)
        try:
            while not self._stop.is_set():
                try:
                    task.run(ctx)
                except Exception:  # one failed run never stops the loop
                    log.exception("task %s failed", task.name)
                self._stop.wait(task.period_s)
        finally:
            ctx.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)
