"""50 consecutive VM boots without a hang (the issue's proof that the machine type is reliable).

Two VMs boot at a time (the host has two cores); each must print its marker and exit 0 within a
generous per-boot deadline, far above the ~3 s a TCG boot takes, so a hang fails the test instead
of slowing it down.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from isobox.drivers.logfile import read_entries
from isobox.drivers.vm.driver import VMDriver
from isobox.model.spec import Kind, WorkloadSpec
from isobox.model.status import Status
from isobox.service import workloads
from isobox.service.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(600)]

BOOTS = 50
PARALLEL = 2
BOOT_DEADLINE_S = 60.0


def test_fifty_boots(ctx: Context, capsys: pytest.CaptureFixture[str]) -> None:
    driver = VMDriver(ctx.paths)
    # Created one after the other (the state database is one connection), booted two at a time.
    records = [
        workloads.create_from_plan(
            ctx,
            workloads.plan(
                ctx, WorkloadSpec(image="busybox", command=("echo", f"boot {n}"), kind=Kind.VM, name=f"boot-{n}")
            ),
        )
        for n in range(BOOTS)
    ]

    def boot(number: int) -> float:
        record = records[number]
        plan = record.plan
        try:
            started = time.monotonic()
            driver.start(record)
            observation = driver.wait(record, BOOT_DEADLINE_S)
            elapsed = time.monotonic() - started
            assert observation.status is Status.EXITED, f"boot {number} hung: {observation}"
            assert observation.exit_code == 0
            lines = [e.content for e in read_entries(Path(plan.log_path))]
            assert lines == [f"boot {number}".encode()]
            return elapsed
        finally:
            driver.delete(record)

    begin = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        times = list(pool.map(boot, range(BOOTS)))
    wall = time.monotonic() - begin
    with capsys.disabled():
        print(
            f"\n{BOOTS} VM boots, {PARALLEL} at a time: wall {wall:.1f} s; per boot (start to exit) "
            f"median {statistics.median(times):.2f} s, max {max(times):.2f} s, min {min(times):.2f} s"
        )
    assert len(times) == BOOTS
