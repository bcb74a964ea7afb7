"""VMDriver: the Driver protocol (drivers/base.py) on QEMU. Each workload is one daemonized QEMU.

State lives in files under plan.workload_dir (see qemu_args.VMFiles), so any isobox process can
observe, stop or delete a VM that another one started, and a crashed isobox leaves nothing it
cannot clean up: delete() kills whatever runs in the VM's own cgroup and removes the directory.
The lifecycle is here; talking to a running guest (attach, exec, console, top) is in interact.py,
snapshots and clones in snapshots.py, commit in commit.py.

Exit codes follow Docker: the workload's own status as the guest init reports it on the status
port; 128+N when it died of signal N in the guest; 137 when isobox killed the VM (kill -9, or stop
past its timeout); 125 when the guest init failed before the workload ran; 255 when QEMU ended
without any report (guest crash).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from isobox.config import Paths
from isobox.drivers.base import Created
from isobox.drivers.vm import accel as vm_accel
from isobox.drivers.vm import agent, anyos, initramfs, interact, launch, qemu_args, streams
from isobox.drivers.vm import commit as vm_commit
from isobox.drivers.vm import copy as vm_copy
from isobox.drivers.vm import create as vm_create
from isobox.drivers.vm import kernel as guest_kernel
from isobox.drivers.vm import snapshots as vm_snapshots
from isobox.drivers.vm import volumes as vm_volumes
from isobox.drivers.vm.qemu_args import VMFiles
from isobox.errors import HostError, InvalidStateError, UnsupportedError, WorkloadError
from isobox.linux.cgroups import WorkloadCgroup
from isobox.linux.tree import discard_tree
from isobox.model.archive import PathStat
from isobox.model.capability import Capability
from isobox.model.plan import RunPlan
from isobox.model.record import Observation, ProcessTable, Stats, WorkloadRecord
from isobox.model.snapshot import SnapshotInfo
from isobox.model.spec import Kind, Resources
from isobox.model.status import Status
from isobox.model.streams import Attach, ExecSpec
from isobox.model.users import ResolvedUser

log = logging.getLogger(__name__)

EXIT_KILLED = 137
EXIT_INIT_FAILED = 125
EXIT_UNKNOWN = 255
AGENT_TIMEOUT_S = 10.0
_NO_AGENT = "a VM booted from a disk image has no isobox guest agent"
_OLD_DEVICES = "this VM was created before VMs had the exec devices (create it again)"


class VMDriver:
    kind = Kind.VM

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    # -- create -----------------------------------------------------------------------------------

    def create(self, plan: RunPlan) -> Created:
        return vm_create.create(self.paths, plan)

    def files(self, record: WorkloadRecord) -> VMFiles:
        return VMFiles.of(record.plan.workload_dir, record.id, self.paths.run)

    def user(self, plan: RunPlan, spec: str) -> ResolvedUser:
        """``spec`` resolved against the image's files, as for containers (model/users.py)."""
        return vm_create.image_user(plan, spec)

    def missing_capabilities(self, record: WorkloadRecord) -> dict[Capability, str]:
        missing: dict[Capability, str] = {}
        if record.plan.disk_boot is not None:
            missing = dict.fromkeys((Capability.EXEC, Capability.EXEC_TTY, Capability.EXEC_STDIN), _NO_AGENT)
            missing[Capability.GUEST_PROCESSES] = missing[Capability.COPY] = _NO_AGENT
            missing[Capability.COMMIT] = "a VM booted from a disk image has no OCI image to add a layer to"
        else:
            missing[Capability.CONSOLE] = "an image VM has no serial console: use attach, or exec -it"
            if not record.exec_devices:
                missing[Capability.EXEC_TTY] = missing[Capability.EXEC_STDIN] = _OLD_DEVICES
        if vm_volumes.of(record.plan.mounts).blocks_memory_snapshots:
            missing[Capability.PROCESS_SNAPSHOT] = (
                "volumes and bind mounts are not part of VM snapshots, so a running VM with them is saved without"
                " its memory only when stopped"
            )
        if any(m.disk for m in record.plan.mounts):
            missing[Capability.CLONE] = "a disk volume is attached to one VM at a time"
        return missing

    # -- start ------------------------------------------------------------------------------------

    def argv(self, record: WorkloadRecord, loadvm: str | None = None) -> list[str]:
        """The QEMU command line of this VM (also used by snapshots and the benchmark)."""
        plan, files = record.plan, self.files(record)
        if plan.disk_boot is not None:
            return anyos.build(id=record.id, accel=vm_accel.detect(), plan=plan, files=files, loadvm=loadvm)
        kernel = guest_kernel.find(self.paths.kernel_dir)
        boot = qemu_args.BootFiles(kernel.vmlinuz, initramfs.ensure(self.paths.cache, self.paths.locks, kernel))
        return qemu_args.build(
            id=record.id,
            accel=vm_accel.detect(),
            memory_bytes=plan.resources.memory_bytes,
            cpus=plan.resources.cpus,
            files=files,
            boot=boot,
            loadvm=loadvm,
            interfaces=plan.network.interfaces if plan.network is not None else (),
            isolated_macs=plan.isolated_macs,
            tty=plan.process.tty,
            mounts=vm_volumes.of(plan.mounts),
            exec_tty=record.exec_devices,
        )

    def start(
        self,
        record: WorkloadRecord,
        attach: Attach | None = None,
        *,
        loadvm: str | None = None,
        during_create: Callable[[], None] | None = None,
    ) -> int:
        if during_create is not None:
            during_create()
        files = self.files(record)
        if launch.alive(launch.read_pid(files.pidfile), files.pidfile):
            raise InvalidStateError("the VM is already running", op="start VM", id=record.id)
        if not files.disk.exists():
            raise WorkloadError("the VM was not created (no disk)", op="start VM", id=record.id, path=str(files.disk))
        for stale in (files.port("status"), files.killed, files.qmp, files.pidfile, files.paused):
            stale.unlink(missing_ok=True)
        positions = streams.sizes(files)
        argv = self.argv(record, loadvm)
        cgroup = WorkloadCgroup.of(record.id)
        cgroup.create()
        files.sockets.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:  # a failure at any step leaves neither the cgroup nor a process in it
            cgroup.limit_memory(host_memory_limit(record.plan))
            vm_volumes.start_daemons(
                vm_volumes.of(record.plan.mounts), files.sockets, files.root / "virtiofsd.log", cgroup, record.id
            )
            pid = launch.start(argv, cgroup, files.pidfile, record.id)
        except BaseException:
            cgroup.kill_all()
            cgroup.remove()
            raise
        files.started.touch()
        files.start_offsets.write_text(json.dumps(positions))
        log.debug("VM %s started: pid %d", record.id, pid)
        if attach is not None:
            interact.stream(self, record, pid, attach, positions)
        return pid

    # -- observe, wait ----------------------------------------------------------------------------

    def observe(self, record: WorkloadRecord) -> Observation:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        running = launch.alive(pid, files.pidfile)
        self.sync_log(record, final=not running)
        if running:
            assert pid is not None
            return Observation(Status.PAUSED if files.paused.exists() else Status.RUNNING, pid=pid)
        if not files.started.exists():
            return Observation(Status.CREATED)
        code, finished = exit_status(files, disk_vm=record.plan.disk_boot is not None)
        return Observation(Status.EXITED, exit_code=code, finished_at=finished)

    def wait(self, record: WorkloadRecord, timeout_s: float | None = None) -> Observation:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        if pid is not None:
            launch.wait_exit(pid, files.pidfile, timeout_s)
        return self.observe(record)

    def sync_log(self, record: WorkloadRecord, *, final: bool, strict: bool = False) -> None:
        """Bring the log up to date; a failure to write it (a full disk) is only a warning unless ``strict``
        (`logs` says it; `ps` or `wait` must not fail for it, and nothing is lost: see streams.sync_log)."""
        files = self.files(record)
        if not files.root.is_dir():
            return
        try:
            streams.sync_log(files, Path(record.plan.log_path), self.paths.locks, record.id, final=final,
                             options=record.plan.log)
        except HostError as exc:
            if strict:
                raise
            log.warning("%s", exc)

    def sync_logs(self, record: WorkloadRecord) -> None:
        """Bring plan.log_path up to date with what QEMU wrote (the log service calls this before reading
        and while following; observe() does it too)."""
        files = self.files(record)
        self.sync_log(record, final=not launch.alive(launch.read_pid(files.pidfile), files.pidfile), strict=True)

    # -- stop, kill, pause ------------------------------------------------------------------------

    def stop(self, record: WorkloadRecord, timeout_s: float) -> None:
        import time

        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        if not launch.alive(pid, files.pidfile):
            return
        assert pid is not None
        deadline = time.monotonic() + timeout_s
        try:
            self.polite_signal(record, record.plan.stop_signal, min(timeout_s, 5.0))
        except WorkloadError as exc:
            log.debug("stop %s: signal through the agent failed: %s", record.id, exc)
        if launch.wait_exit(pid, files.pidfile, max(0.0, deadline - time.monotonic())):
            return
        self.terminate(record, files, pid)

    def kill(self, record: WorkloadRecord, signal_number: int) -> None:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        if not launch.alive(pid, files.pidfile):
            raise InvalidStateError("the VM is not running", op="kill VM", id=record.id)
        assert pid is not None
        if signal_number == int(signal.SIGKILL):
            self.terminate(record, files, pid)
            return
        if not self.polite_signal(record, signal_number, AGENT_TIMEOUT_S):
            raise WorkloadError(f"the guest could not deliver signal {signal_number}", op="kill VM", id=record.id)

    def pause(self, record: WorkloadRecord) -> None:
        """QMP stop: the vCPUs halt, guest memory and devices stay as they are."""
        self.monitor_command(record, "stop")
        self.files(record).paused.touch()

    def unpause(self, record: WorkloadRecord) -> None:
        self.monitor_command(record, "cont")
        self.files(record).paused.unlink(missing_ok=True)

    def monitor_command(self, record: WorkloadRecord, command: str) -> None:
        from isobox.drivers.vm import qmp  # qemu.qmp pulls in asyncio: ~30 ms not every start pays

        files = self.files(record)
        if not launch.alive(launch.read_pid(files.pidfile), files.pidfile):
            raise InvalidStateError("the VM is not running", op=f"{command} VM", id=record.id)
        with qmp.connect(files.qmp, record.id, timeout_s=AGENT_TIMEOUT_S) as monitor:
            monitor.command(command)

    def polite_signal(self, record: WorkloadRecord, signal_number: int, timeout_s: float) -> bool:
        """The signal to the workload through the agent; a disk VM has none: ACPI power button."""
        if record.plan.disk_boot is not None:
            from isobox.drivers.vm import qmp

            with qmp.connect(self.files(record).qmp, record.id, timeout_s=timeout_s) as monitor:
                monitor.command("system_powerdown")
            return True
        return agent.signal_workload(self.channel(record, "ctl"), signal_number, timeout_s)

    def terminate(self, record: WorkloadRecord, files: VMFiles, pid: int) -> None:
        """End the VM now: QMP quit (QEMU flushes the qcow2 overlay), SIGKILL if that fails."""
        from isobox.drivers.vm import qmp

        files.killed.touch()
        with contextlib.suppress(WorkloadError), qmp.connect(files.qmp, record.id, timeout_s=5.0) as monitor:
            monitor.command("quit")
        if not launch.wait_exit(pid, files.pidfile, 5.0):
            launch.kill(pid, files.pidfile)
            launch.wait_exit(pid, files.pidfile, 10.0)

    def channel(self, record: WorkloadRecord, port: str) -> agent.AgentChannel:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        return agent.AgentChannel(
            files, port, self.paths.locks, record.id, alive=lambda: launch.alive(pid, files.pidfile)
        )

    # -- talking to the guest (interact.py) -------------------------------------------------------

    def attach(self, record: WorkloadRecord, attach: Attach) -> bool:
        return interact.attach(self, record, attach)

    def exec(self, record: WorkloadRecord, spec: ExecSpec, streams: Attach) -> int:
        return interact.exec(self, record, spec, streams)

    def console(self, record: WorkloadRecord, attach: Attach) -> None:
        interact.console(self, record, attach)

    def top(self, record: WorkloadRecord) -> ProcessTable:
        return interact.top(self, record)

    def replan(self, record: WorkloadRecord) -> None:
        if record.plan.disk_boot is None:  # a disk-image VM's guest configures its network itself (DHCP)
            vm_create.write_run_script(self.files(record), record.plan)

    def resize(self, record: WorkloadRecord, rows: int, columns: int) -> None:
        interact.resize(self, record, rows, columns)

    def stat_path(self, record: WorkloadRecord, path: str) -> PathStat:
        return vm_copy.stat_path(self, record, path)

    def copy_from(self, record: WorkloadRecord, path: str, out: BinaryIO) -> PathStat:
        return vm_copy.copy_from(self, record, path, out)

    def copy_to(self, record: WorkloadRecord, directory: str, tar: BinaryIO) -> None:
        vm_copy.copy_to(self, record, directory, tar)

    def stats(self, record: WorkloadRecord) -> Stats:
        """The host's view (QEMU and its helpers in the VM's cgroup); the limit shown is the guest's RAM,
        as a user sized it with --memory (the cgroup allows QEMU some more, host_memory_limit)."""
        values = WorkloadCgroup.of(record.id).stats()
        guest = qemu_args.memory_mib(record.plan.resources.memory_bytes) * 1024 * 1024
        return Stats(values.cpu_ns, values.memory_bytes, guest, values.pids)

    # -- snapshots, clones, commit ----------------------------------------------------------------

    def snapshot_create(self, record: WorkloadRecord, name: str) -> SnapshotInfo:
        return vm_snapshots.create(self, record, name)

    def snapshot_list(self, record: WorkloadRecord) -> list[SnapshotInfo]:
        return vm_snapshots.list_snapshots(self, record)

    def snapshot_restore(
        self, record: WorkloadRecord, name: str, *, during_create: Callable[[], None] | None = None
    ) -> int | None:
        return vm_snapshots.restore(self, record, name, during_create)

    def snapshot_remove(self, record: WorkloadRecord, name: str) -> None:
        vm_snapshots.remove(self, record, name)

    def clone_plan(self, source: WorkloadRecord, plan: RunPlan) -> RunPlan:
        return vm_snapshots.clone_plan(source, plan)

    def snapshot_clone(self, source: WorkloadRecord, name: str, target: WorkloadRecord) -> int:
        return vm_snapshots.clone(self, source, name, target)

    def commit_layer(self, record: WorkloadRecord, out: BinaryIO, skip: frozenset[str]) -> None:
        vm_commit.write_layer(self, record, out, skip)

    def update_resources(self, record: WorkloadRecord, resources: Resources) -> None:
        """The guest's RAM and vCPUs are fixed while QEMU runs (no memory hotplug or vCPU hotplug in this
        machine): a running VM is refused; a stopped one boots with the new values (start reads the plan)."""
        current = record.plan.resources
        changed = [flag for flag, old, new in (("--memory", current.memory_bytes, resources.memory_bytes),
                                               ("--cpus", current.cpus, resources.cpus)) if old != new]
        if changed and self.running(record):
            raise UnsupportedError(f"a running VM cannot change {' and '.join(changed)}: stop {record.name}, "
                                   "update it, and start it again", op="update", id=record.name)
        if resources.pids_limit != current.pids_limit:
            raise UnsupportedError("--pids-limit does not apply to a VM: its processes are its guest's kernel's",
                                   op="update", id=record.name)

    def export_filesystem(self, record: WorkloadRecord, out: BinaryIO) -> None:
        vm_commit.write_filesystem(self, record, out)

    def running(self, record: WorkloadRecord) -> bool:
        files = self.files(record)
        return launch.alive(launch.read_pid(files.pidfile), files.pidfile)

    # -- delete -----------------------------------------------------------------------------------

    def delete(self, record: WorkloadRecord) -> None:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        try:
            if launch.alive(pid, files.pidfile):
                assert pid is not None
                self.terminate(record, files, pid)
        finally:  # whatever happened above, nothing of the VM may stay behind
            cgroup = WorkloadCgroup.of(record.id)
            cgroup.kill_all()
            cgroup.remove()
            discard_tree(files.root)
            discard_tree(files.sockets)


# Beyond the guest's RAM: QEMU itself, TCG's translation cache (qemu_args.TCG_TB_SIZE_MIB), virtiofsd,
# and the host page cache of the VM's disks. An idle 256 MiB VM holds about 180 MiB here.
HOST_MEMORY_OVERHEAD_BYTES = 256 * 1024 * 1024


def host_memory_limit(plan: RunPlan) -> int:
    """The VM's cgroup memory limit: its guest RAM (--memory) plus what QEMU needs around it."""
    return qemu_args.memory_mib(plan.resources.memory_bytes) * 1024 * 1024 + HOST_MEMORY_OVERHEAD_BYTES


def exit_status(files: VMFiles, *, disk_vm: bool = False) -> tuple[int, float | None]:
    """The exit code of a VM that is no longer running, and when it finished (see module docstring)."""
    finished = None
    for candidate in (files.port("status"), files.killed, files.console, files.port("stdout")):
        with contextlib.suppress(OSError):
            finished = candidate.stat().st_mtime
            break
    try:
        text = files.port("status").read_text().strip()
    except OSError:
        text = ""
    last = text.splitlines()[-1] if text else ""
    if last.lstrip("-").isdigit():
        return int(last), finished
    if files.killed.exists():
        return EXIT_KILLED, finished
    if disk_vm:  # a firmware-booted guest that powered off by itself
        return 0, finished
    if last.startswith("init-error"):
        return EXIT_INIT_FAILED, finished
    return EXIT_UNKNOWN, finished
