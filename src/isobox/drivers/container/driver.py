"""ContainerDriver: the Driver protocol over an OCI runtime (crun/runc) supervised by conmon."""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from isobox.config import Paths
from isobox.drivers import logfile
from isobox.drivers.base import Created
from isobox.drivers.container import bundle, checkpoint, interact, monitor
from isobox.drivers.container import copy as container_copy
from isobox.drivers.container import snapshots as container_snapshots
from isobox.drivers.container.processes import host_processes
from isobox.drivers.container.runtime import Runtime, probe
from isobox.errors import (
    HostError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    UnsupportedError,
    WorkloadError,
)
from isobox.linux.cgroups import WorkloadCgroup
from isobox.linux.proc import process_alive, read_pid
from isobox.model.archive import PathStat
from isobox.model.capability import Capability
from isobox.model.network import NetworkMode
from isobox.model.plan import RunPlan
from isobox.model.record import Observation, ProcessTable, Stats, WorkloadRecord
from isobox.model.snapshot import SnapshotInfo
from isobox.model.spec import Kind, Resources, RestartPolicy
from isobox.model.status import Status
from isobox.model.streams import Attach, ExecSpec
from isobox.state.locks import locked
from isobox.storage.layerdiff import write_layer

log = logging.getLogger(__name__)
POLL_S = 0.01
KILLED_MARKER = "killed"  # isobox sent SIGKILL: the exit code is 137 even if conmon could not record it


class ContainerDriver:
    kind = Kind.CONTAINER

    def __init__(self, paths: Paths, exit_command: tuple[str, ...] = ()) -> None:
        self.paths = paths
        self.exit_dir = paths.run / "exits"
        self.exit_command = exit_command
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = probe(self.paths.run)
        return self._runtime

    @staticmethod
    def conmon_path() -> str:
        found = shutil.which("conmon", path="/usr/local/libexec/podman:/usr/libexec/podman:/usr/local/bin:/usr/bin")
        if not found:
            raise HostError("conmon is not installed (run scripts/setup)", op="start container")
        return found

    # ---- lifecycle -----------------------------------------------------------------------------

    def create(self, plan: RunPlan) -> Created:
        return Created(bundle.prepare(plan, self.runtime.name))

    def missing_capabilities(self, record: WorkloadRecord) -> dict[Capability, str]:
        missing = {
            Capability.CLONE: "snapshot clone starts VMs; for a container, commit it and run the image",
            Capability.CONSOLE: "a container has no serial console: use attach, or exec -it",
        }
        if record.plan.process.tty or record.plan.process.interactive:
            missing[Capability.PROCESS_SNAPSHOT] = (
                "a container with -t or -i could not be restored (its terminal or stdin is gone)"
            )
        else:
            criu = self.criu()
            if not criu.usable:
                missing[Capability.PROCESS_SNAPSHOT] = criu.reason
        return missing

    def start(
        self, record: WorkloadRecord, attach: Attach | None = None, *, during_create: Callable[[], None] | None = None
    ) -> int:
        plan = record.plan
        conmon_plan = self._prepare_start(record, attach)
        pid = self._create(conmon_plan, during_create)
        if attach is None:
            self.runtime.run("start", plan.id, op="start", workload=plan.id)
            return pid
        interact.stream(record, attach, start=lambda: self.runtime.run("start", plan.id, op="start", workload=plan.id))
        return pid

    def attach(self, record: WorkloadRecord, attach: Attach) -> bool:
        return interact.stream(record, attach)

    def _create(self, conmon_plan: monitor.ConmonPlan, during: Callable[[], None] | None) -> int:
        """conmon + `runtime create`, running ``during`` meanwhile; if that fails, the created container is
        deleted (its process never ran) and the failure raised."""
        try:
            return self._spawn(conmon_plan, during)
        except WorkloadError as exc:
            command_error = interact.exec_failure(str(exc.message), conmon_plan.id)
            if command_error is not None:
                raise command_error from exc
            raise

    def _spawn(self, conmon_plan: monitor.ConmonPlan, during: Callable[[], None] | None) -> int:
        if during is None:
            return monitor.spawn(conmon_plan)
        failure: BaseException | None = None

        def guarded() -> None:
            nonlocal failure
            try:
                during()
            except BaseException as exc:  # re-raised below, once the runtime is done creating
                failure = exc

        pid = monitor.spawn(conmon_plan, guarded)
        if failure is not None:
            self.runtime.run("delete", "--force", conmon_plan.id, op="start", workload=conmon_plan.id, check=False)
            raise failure
        return pid

    def _prepare_start(self, record: WorkloadRecord, attach: Attach | None) -> monitor.ConmonPlan:
        """Forget the previous run, mount the rootfs, clear old exit files: the conmon plan of a start."""
        plan = record.plan
        workdir = Path(plan.workload_dir)
        if record.status is not Status.CREATED:  # a previous run's container is still known to the runtime
            self.runtime.run("delete", "--force", plan.id, op="start", workload=plan.id, check=False)
        bundle.mount_rootfs(plan)
        self.exit_dir.mkdir(parents=True, exist_ok=True)
        for stale in (self.exit_dir / plan.id, workdir / "persist" / "exit", workdir / "persist" / "oom",
                      workdir / KILLED_MARKER):
            stale.unlink(missing_ok=True)
        return monitor.ConmonPlan(
            conmon=self.conmon_path(),
            runtime=self.runtime.path,
            runtime_root=self.runtime.root,
            id=plan.id,
            name=plan.name,
            bundle=str(workdir),
            exit_dir=str(self.exit_dir),
            log_path=plan.log_path,
            terminal=plan.process.tty,
            # -i keeps the container's stdin open even when detached, for a later `attach` (as Docker).
            stdin=plan.process.interactive and (attach is None or attach.stdin is not None),
            exit_command=self._exit_command(plan) if attach is None else (),
        )

    # ---- checkpoints (CRIU) --------------------------------------------------------------------

    def criu(self) -> checkpoint.Criu:
        return checkpoint.find(self.paths.run)

    def checkpoint(self, record: WorkloadRecord, images: Path) -> None:
        """Save the running container's processes into ``images``; it keeps running."""
        checkpoint.dump(self.runtime.path, self.runtime.root, self.criu(), record.id, images)

    def restore_checkpoint(self, record: WorkloadRecord, images: Path) -> int:
        """Run the container again from a checkpoint (not running now); returns its pid."""
        if record.plan.process.tty or record.plan.process.interactive:
            raise InvalidArgumentError(
                "containers with -t or -i cannot be restored from a checkpoint (their terminal or stdin is gone)",
                op="restore container",
                id=record.id,
            )
        runtime_args, restore_args = checkpoint.restore_options(self.criu(), images, record.id)
        conmon_plan = replace(
            self._prepare_start(record, None),
            restore=str(images),
            runtime_args=runtime_args,
            restore_args=restore_args,
        )
        try:
            pid = monitor.spawn(conmon_plan)
        except WorkloadError as exc:
            detail = checkpoint.restore_error(images)
            if detail:
                raise WorkloadError(f"restore failed: {detail}", op="restore container", id=record.id) from exc
            raise
        network = record.plan.network
        if network is None or (network.mode is NetworkMode.NONE and network.netns_path is None):
            # runc made this network namespace anew and restores no devices in it: bring loopback up
            # again, as runc did at create (isobox's own namespaces outlive the checkpoint unchanged).
            checkpoint.loopback_up(pid, record.id)
        return pid

    def observe(self, record: WorkloadRecord) -> Observation:
        plan = record.plan
        recorded = self._recorded_exit(plan)
        if recorded is not None:
            return recorded
        state = self.runtime.state(plan.id) if record.status is not Status.CREATED else None
        if state is None:
            if record.status is Status.RUNNING and time.time() - (record.started_at or 0.0) < monitor.SYNC_TIMEOUT_S:
                # Recorded as running by a start still creating it (an attached start records RUNNING before
                # conmon runs): not created yet is not dead. A failed start puts the record back itself.
                return Observation(Status.RUNNING, 0)
            if record.status in (Status.RUNNING, Status.PAUSED):
                # The runtime forgot it (host reboot) and conmon recorded nothing: it died with the host.
                return Observation(Status.EXITED, 0, self._unknown_exit(plan), finished_at=time.time())
            return Observation(record.status, 0, record.exit_code, record.oom_killed, record.finished_at)
        status = str(state.get("status"))
        if status in ("running", "created", "paused"):
            return Observation(Status.PAUSED if status == "paused" else Status.RUNNING, int(state.get("pid") or 0))
        if self._conmon_pid(plan) is not None:
            # Stopped, and conmon is writing its exit code this very moment: the code comes with it.
            return Observation(Status.RUNNING, int(state.get("pid") or 0))
        # conmon is gone: it wrote the exit code just before it ended (since the first look), or never will.
        recorded = self._recorded_exit(plan)
        if recorded is not None:
            return recorded
        return Observation(Status.EXITED, 0, self._unknown_exit(plan), finished_at=time.time())

    def _recorded_exit(self, plan: RunPlan) -> Observation | None:
        code = self._exit_code(plan)
        if code is None:
            return None
        oom = (Path(plan.workload_dir) / "persist" / "oom").exists()
        return Observation(Status.EXITED, 0, code, oom, self._exit_time(plan))

    def _unknown_exit(self, plan: RunPlan) -> int:
        """The exit code of a container whose conmon recorded none (conmon killed, a full disk that left its
        exit file empty, a host reboot): 137 if isobox killed it, else 255 (unknown), as a VM's."""
        return 137 if (Path(plan.workload_dir) / KILLED_MARKER).exists() else 255

    def wait(self, record: WorkloadRecord, timeout_s: float | None = None) -> Observation:
        """Until the exit code is recorded, or nobody is left to record it (conmon gone): never longer."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delay = POLL_S
        while True:
            if self._exit_code(record.plan) is not None or (deadline is not None and time.monotonic() >= deadline):
                return self.observe(record)
            conmon = self._conmon_pid(record.plan)
            if conmon is None:
                state = self.runtime.state(record.plan.id)
                if state is None or state.get("status") == "stopped":
                    return self.observe(record)
            _wait_for_exit(conmon, delay)
            delay = min(delay * 1.5, 0.2)

    def stop(self, record: WorkloadRecord, timeout_s: float) -> None:
        try:
            self.kill(record, record.plan.stop_signal)
        except (NotFoundError, WorkloadError):
            pass
        if self.wait(record, timeout_s).status is Status.EXITED:
            return
        (Path(record.plan.workload_dir) / KILLED_MARKER).touch()
        try:
            self.runtime.run("kill", "--all", record.plan.id, "KILL", op="stop", workload=record.id)
        except (NotFoundError, WorkloadError):
            pass
        self.wait(record, 10.0)

    def kill(self, record: WorkloadRecord, signal_number: int) -> None:
        if signal_number == int(signal.SIGKILL):
            (Path(record.plan.workload_dir) / KILLED_MARKER).touch()
        self.runtime.run("kill", record.plan.id, str(signal_number), op="kill", workload=record.id)

    def pause(self, record: WorkloadRecord) -> None:
        """The freezer cgroup (v1 freezer.state, v2 cgroup.freeze), through the runtime."""
        self.runtime.run("pause", record.plan.id, op="pause", workload=record.id)

    def unpause(self, record: WorkloadRecord) -> None:
        self.runtime.run("resume", record.plan.id, op="unpause", workload=record.id)

    def exec(self, record: WorkloadRecord, spec: ExecSpec, streams: Attach) -> int:
        return interact.exec(self.runtime, record, spec, streams)

    def stats(self, record: WorkloadRecord) -> Stats:
        values = WorkloadCgroup.of(record.plan.id).stats()
        return Stats(values.cpu_ns, values.memory_bytes, values.memory_limit_bytes, values.pids, values.io_bytes)

    def top(self, record: WorkloadRecord) -> ProcessTable:
        """The container's processes as the host sees them (Docker's `top` runs ps on the host too)."""
        if self.runtime.state(record.plan.id) is None:
            raise InvalidStateError(f"container {record.name} is not running", op="top", id=record.id)
        return host_processes(self.runtime.pids(record.plan.id))

    def sync_logs(self, record: WorkloadRecord) -> None:
        """conmon writes the log itself; what is left is rotating it by --log-opt max-size/max-file: the
        files move aside, then conmon is asked to reopen (monitor.reopen_log), so no line is lost."""
        path, options = Path(record.plan.log_path), record.plan.log
        if not logfile.needs_rotation(path, options):
            return
        with locked(self.paths.locks, f"log-rotate-{record.id}"):
            if logfile.needs_rotation(path, options):  # not done by another process meanwhile
                bundle_dir = Path(record.plan.workload_dir)
                dropped = logfile.rotate(path, options, lambda: monitor.reopen_log(bundle_dir))
                if dropped:
                    log.info("log of %s: dropped %s (--log-opt max-file=%d)", record.name,
                             ", ".join(p.name for p in dropped), options.max_file)

    def console(self, record: WorkloadRecord, attach: Attach) -> None:
        raise UnsupportedError("a container has no serial console", op="console", id=record.name)

    def replan(self, record: WorkloadRecord) -> None:
        bundle.rewrite_etc_files(record.plan)

    def resize(self, record: WorkloadRecord, rows: int, columns: int) -> None:
        monitor.resize(Path(record.plan.workload_dir), rows, columns)

    def stat_path(self, record: WorkloadRecord, path: str) -> PathStat:
        return container_copy.stat_path(record.plan, path)

    def copy_from(self, record: WorkloadRecord, path: str, out: BinaryIO) -> PathStat:
        return container_copy.copy_from(record.plan, path, out)

    def copy_to(self, record: WorkloadRecord, directory: str, tar: BinaryIO) -> None:
        container_copy.copy_to(record.plan, directory, tar)

    # ---- snapshots and commit ------------------------------------------------------------------

    def snapshot_create(self, record: WorkloadRecord, name: str) -> SnapshotInfo:
        return container_snapshots.take(self, record, name)

    def snapshot_list(self, record: WorkloadRecord) -> list[SnapshotInfo]:
        return [container_snapshots.info(s) for s in container_snapshots.list_snapshots(record)]

    def snapshot_restore(
        self, record: WorkloadRecord, name: str, *, during_create: Callable[[], None] | None = None
    ) -> int | None:
        return container_snapshots.go_back(self, record, name, during_create)

    def snapshot_remove(self, record: WorkloadRecord, name: str) -> None:
        container_snapshots.remove(record, name)

    def clone_plan(self, source: WorkloadRecord, plan: RunPlan) -> RunPlan:
        raise UnsupportedError("snapshot clone is for VMs", op="snapshot clone", id=source.name)

    def snapshot_clone(self, source: WorkloadRecord, name: str, target: WorkloadRecord) -> int:
        raise UnsupportedError("snapshot clone is for VMs", op="snapshot clone", id=source.name)

    def commit_layer(self, record: WorkloadRecord, out: BinaryIO, skip: frozenset[str]) -> None:
        """The overlay upper directory is the container's changes (whiteouts included)."""
        write_layer(Path(record.plan.workload_dir) / "upper", out, skip=skip)

    def update_resources(self, record: WorkloadRecord, resources: Resources) -> None:
        """A running container's cgroup at once; config.json for its next starts either way."""
        if self.observe(record).status in (Status.RUNNING, Status.PAUSED):
            bundle.apply_limits(record.plan, resources)
        bundle.rewrite_resources(replace(record.plan, resources=resources))

    def export_filesystem(self, record: WorkloadRecord, out: BinaryIO) -> None:
        """The merged rootfs as the host sees it: the image and the writable layer (volumes are mounted in the
        container's own mount namespace only, and are left out as Docker's export leaves them)."""
        bundle.mount_rootfs(record.plan)
        write_layer(bundle.rootfs_dir(record.plan), out)

    def delete(self, record: WorkloadRecord) -> None:
        plan = record.plan
        if self.runtime.name == "runc" and self._exit_code(plan) is not None and not self._conmon_alive(plan):
            # Exited for sure (conmon recorded it, then ended): all that `runc delete` would still do,
            # with no hooks to run, is remove the cgroups (bundle.cleanup does) and its state
            # directory. Doing both here saves a runc start-up on every `run --rm`.
            shutil.rmtree(Path(self.runtime.root) / plan.id, ignore_errors=True)
        else:
            # `delete --force` kills whatever still runs and forgets the container; a no-op if it is unknown.
            self.runtime.run("delete", "--force", plan.id, op="remove", workload=plan.id, check=False)
        self._end_conmon(plan)
        bundle.cleanup(plan)
        (self.exit_dir / plan.id).unlink(missing_ok=True)

    # ---- internals -----------------------------------------------------------------------------

    def _exit_command(self, plan: RunPlan) -> tuple[str, ...]:
        """Only workloads with --rm or a restart policy need isobox to act when they exit."""
        wanted = plan.remove or plan.restart.policy is not RestartPolicy.NO
        return (*self.exit_command, plan.id) if wanted and self.exit_command else ()

    def _exit_code(self, plan: RunPlan) -> int | None:
        for path in (self.exit_dir / plan.id, Path(plan.workload_dir) / "persist" / "exit"):
            try:
                text = path.read_text().strip()
            except (OSError, ValueError):
                continue
            if text.lstrip("-").isdigit():
                return int(text)
            if text:
                log.warning("exit file %s holds %r, not an exit code: ignored", path, text[:40])
        return None

    def _exit_time(self, plan: RunPlan) -> float | None:
        for path in (self.exit_dir / plan.id, Path(plan.workload_dir) / "persist" / "exit"):
            try:
                return path.stat().st_mtime
            except OSError:
                continue
        return None

    def _conmon_pid(self, plan: RunPlan) -> int | None:
        """conmon's pid, only if that pid still is the conmon of this container (pids get reused)."""
        pid = read_pid(Path(plan.workload_dir) / "conmon.pid")
        return pid if process_alive(pid, plan.id.encode()) else None

    def _conmon_alive(self, plan: RunPlan) -> bool:
        return self._conmon_pid(plan) is not None

    def _end_conmon(self, plan: RunPlan) -> None:
        pid = self._conmon_pid(plan)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        for _ in range(200):
            if self._conmon_pid(plan) is None:
                return
            time.sleep(POLL_S)


def _wait_for_exit(pid: int | None, timeout_s: float) -> None:
    """Sleep up to ``timeout_s``, waking as soon as process ``pid`` (conmon) ends: it writes the exit
    file just before, so a foreground run learns the exit code without a polling delay."""
    if pid is None:
        time.sleep(timeout_s)
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # already gone
        return
    try:
        select.select([fd], [], [], timeout_s)
    finally:
        os.close(fd)
