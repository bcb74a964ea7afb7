"""VM benchmarks: isobox's overhead over raw QEMU, snapshot restore vs cold boot, idle memory.

1. ``vm_start``: ``isobox run --rm --vm busybox true`` (CLI, start to exit; with ``--network none``
   and with the default network) against the floor: raw
   ``qemu-system-x86_64`` with the very kernel, initramfs, disk and devices isobox would use (its own
   argv minus -daemonize/-pidfile), in the foreground until the guest powers off. Goal: <= 1.10x.
2. ``vm_restore``: time until a VM runs its workload: a cold boot (start → the workload printed
   "ready") against a clone started from a snapshot taken after "ready" (start → QEMU runs the
   restored guest). Goal: restore <= 0.3x cold boot.
3. ``vm_memory``: PSS of one idle VM (its QEMU) against one idle container (its process tree).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.harness import Case, Skipped, report, require, rss_kb, run_cases, summarize
from isobox.drivers.logfile import read_entries
from isobox.drivers.vm import snapshots
from isobox.drivers.vm.driver import VMDriver
from isobox.model import ids
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind, WorkloadSpec
from isobox.service import workloads
from isobox.service.context import Context, open_context

ISOBOX = [sys.executable, "-m", "isobox.cli.main"]
RUN_VM = ["run", "--rm", "--vm"]


def _vm(ctx: Context, driver: VMDriver, *command: str) -> WorkloadRecord:
    """A created (not started) VM workload, made as `isobox create --vm` makes it, driven by ``driver``."""
    return workloads.create_from_plan(
        ctx, workloads.plan(ctx, WorkloadSpec(image="busybox", command=command, kind=Kind.VM))
    )


def _raw_argv(driver: VMDriver, record: WorkloadRecord) -> list[str]:
    driver.files(record).sockets.mkdir(parents=True, exist_ok=True)
    argv = driver.argv(record)
    index = argv.index("-daemonize")
    del argv[index : index + 3]  # -daemonize -pidfile PATH
    return argv


def _wait_output(driver: VMDriver, record: WorkloadRecord, text: bytes, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        driver.observe(record)
        if any(e.content == text for e in read_entries(Path(record.plan.log_path))):
            return
        time.sleep(0.02)
    raise RuntimeError(f"VM {record.id[:12]} did not print {text!r}")


def bench_start(ctx: Context, driver: VMDriver, runs: int) -> None:
    floor = _vm(ctx, driver, "true")
    subprocess.run([*ISOBOX, "system", "setup-builtin"], check=True, capture_output=True)
    try:
        # The floor has no NIC: "--network none" is the like-for-like case; the default adds the
        # network service's work (TAP, bridge port, addresses) on top.
        cases = [
            Case("isobox run --rm --vm --network none", [*ISOBOX, *RUN_VM, "--network", "none", "busybox", "true"]),
            Case("isobox run --rm --vm (default network)", [*ISOBOX, *RUN_VM, "busybox", "true"]),
            Case("raw qemu", _raw_argv(driver, floor)),
        ]
        run_cases("vm_start", cases, runs=runs, warmup=1, baseline="raw qemu")
    finally:
        driver.delete(floor)


def bench_restore(ctx: Context, driver: VMDriver, runs: int) -> None:
    source = _vm(ctx, driver, "sh", "-c", "echo ready; while :; do sleep 1; done")
    driver.start(source)
    _wait_output(driver, source, b"ready")
    snapshots.create(driver, source, "ready")
    driver.stop(source, 5)
    made: list[WorkloadRecord] = []

    def cold() -> None:
        record = _vm(ctx, driver, "sh", "-c", "echo ready; while :; do sleep 1; done")
        made.append(record)
        driver.start(record)
        _wait_output(driver, record, b"ready")

    def restore() -> None:
        workload_id = ids.new_id()
        plan = replace(source.plan, id=workload_id, workload_dir=str(ctx.paths.workloads / workload_id))
        driver.create(plan)
        record = replace(source, id=workload_id, plan=plan)
        made.append(record)
        snapshots.clone(driver, source, "ready", record)

    def cleanup() -> None:
        while made:
            driver.delete(made.pop())

    try:
        cases = [
            Case("cold boot", cold, teardown=cleanup, requires=("qemu-system-x86_64",)),
            Case("restore snapshot", restore, teardown=cleanup, requires=("qemu-system-x86_64",)),
        ]
        run_cases("vm_restore", cases, runs=runs, warmup=1, baseline="cold boot")
    finally:
        cleanup()
        driver.delete(source)


def bench_memory(ctx: Context, driver: VMDriver, runs: int) -> None:
    from isobox.service import workloads

    samples: dict[str, list[float]] = {"idle VM (QEMU)": [], "idle container": []}
    for _ in range(runs):
        vm = _vm(ctx, driver, "sleep", "600")
        pid = driver.start(vm)
        time.sleep(5)  # boot settled: the guest idles in sleep
        samples["idle VM (QEMU)"].append(float(rss_kb([pid])))
        driver.delete(vm)
        result = workloads.run(ctx, WorkloadSpec(image="busybox", command=("sleep", "600")), detach=True)
        time.sleep(1)
        samples["idle container"].append(float(rss_kb([result.record.pid])))
        workloads.remove(ctx, result.record.id, force=True)
    report(summarize("vm_memory", samples, baseline="idle container", unit="kB"))


def main(runs: int = 5) -> None:
    require("qemu-system-x86_64", "qemu-img", "mkfs.ext4")
    if os.geteuid() != 0:
        raise Skipped("VM benchmarks need root")
    root = tempfile.mkdtemp(prefix="isobox-bench-vm-", dir="/var/tmp")
    os.environ["ISOBOX_ROOT"] = root
    ctx = open_context(root)
    driver = VMDriver(ctx.paths)
    try:
        bench_start(ctx, driver, runs)
        bench_restore(ctx, driver, runs)
        bench_memory(ctx, driver, min(runs, 3))
    finally:
        from isobox.service import networks

        networks.prune(ctx)  # the default network stays up after its last workload: not after the bench
        ctx.close()
        subprocess.run(["rm", "-rf", root], check=False)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
