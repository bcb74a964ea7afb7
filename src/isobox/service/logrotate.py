"""Log rotation by `--log-opt max-size/max-file`: one level-triggered pass over the workloads, for the
engine's supervisor (a task `(name, period_s, fn(ctx))`, see docs/reliability.md), and a loop that runs
it until told to stop.

A pass asks each running workload's driver to bring its log in line with its options (`sync_logs`): a
container's log is renamed aside and conmon asked to reopen it; a VM's log is rotated as its driver
appends the guest's output. Workloads without max-size keep their whole log and cost nothing here.
`isobox logs` runs the same rotation for the workload it reads, and `isobox system rotate-logs` runs
this pass (once, or every few seconds) where no engine runs.
"""

from __future__ import annotations

import logging
import threading

from isobox.errors import IsoboxError
from isobox.model.status import Status
from isobox.service import workloads
from isobox.service.context import Context

log = logging.getLogger(__name__)

NAME = "logrotate"
PERIOD_S = 2.0


def rotate(ctx: Context) -> int:
    """One pass; returns how many workloads' logs were looked at. A failure for one workload is logged and
    does not stop the others."""
    looked = 0
    for record in ctx.records.workloads.all():
        if not record.plan.log.rotates or record.status not in (Status.RUNNING, Status.PAUSED):
            continue
        looked += 1
        try:
            workloads.driver_for(ctx, record.kind).sync_logs(record)
        except (IsoboxError, OSError) as exc:
            log.warning("rotating the log of %s: %s", record.name, exc)
    return looked


def loop(ctx: Context, stop: threading.Event, period_s: float = PERIOD_S) -> None:
    """Run `rotate` every ``period_s`` until ``stop`` is set (a supervisor's thread, or the CLI)."""
    while not stop.is_set():
        try:
            rotate(ctx)
        except IsoboxError as exc:  # the records could not be read this time: try again next period
            log.warning("log rotation: %s", exc)
        stop.wait(period_s)


TASK = (NAME, PERIOD_S, rotate)
