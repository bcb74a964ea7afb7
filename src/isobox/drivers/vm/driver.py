"""VMDriver: the Driver protocol (drivers/base.py) on QEMU. Each workload is one daemonized QEMU.

State lives in files under plan.workload_dir (see qemu_args.VMFiles), so any isobox process can
observe, stop or delete a VM that another one started, and a crashed isobox leaves nothing it
cannot clean up: delete() kills whatever runs in the VM's own cgroup and removes the directory.

Exit codes follow Docker: the workload's own status as the guest init reports it on the status
port; 128+N when it died of signal N in the guest; 137 when isobox killed the VM (kill -9, or stop
past its timeout); 125 when the guest init failed before the workload ran; 255 when QEMU ended
without any report (guest crash).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from isobox.command import run
from isobox.config import Paths
from isobox.drivers.base import Attach, ExecSpec, TerminalSize, write_all
from isobox.drivers.vm import accel as vm_accel
from isobox.drivers.vm import (
    agent,
    anyos,
    exec_input,
    exec_tty,
    guest_script,
    initramfs,
    launch,
    qemu_args,
    rootdisk,
    streams,
)
from isobox.drivers.vm import kernel as guest_kernel
from isobox.drivers.vm import volumes as vm_volumes
from isobox.drivers.vm.cgroup import VMCgroup, pids_in
from isobox.drivers.vm.qemu_args import VMFiles
from isobox.errors import InvalidStateError, WorkloadError
from isobox.linux.tree import discard_tree
from isobox.model.network import hosts_file, resolv_conf
from isobox.model.plan import RunPlan
from isobox.model.record import Observation, Stats, WorkloadRecord
from isobox.model.status import Status

log = logging.getLogger(__name__)

EXIT_KILLED = 137
EXIT_INIT_FAILED = 125
EXIT_UNKNOWN = 255
AGENT_TIMEOUT_S = 10.0
DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, as Docker's default
EXEC_TTY = "exec_devices"  # driver_info key: the VM has the exec console and input port (exec -t, -i)


class VMDriver:
    kind = "vm"

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    # -- create -----------------------------------------------------------------------------------

    def create(self, plan: RunPlan) -> dict[str, str]:
        files = VMFiles.of(plan.workload_dir, plan.id, self.paths.run)
        existed = files.root.exists()
        files.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if anyos.is_disk_vm(plan):
            return self._create_disk_vm(plan, files, existed)
        with contextlib.ExitStack() as undo:
            undo.callback(_undo_create, files, existed)
            kernel = guest_kernel.find(self.paths.kernel_dir)
            boot = initramfs.ensure(self.paths.cache, self.paths.locks, kernel)
            base = rootdisk.ensure_base(self.paths.cache, self.paths.locks, plan.image_id, plan.layers)
            rootdisk.create_overlay(base, files.disk)
            user = self._user(plan, plan.process.user)
            files.run_script.write_text(
                guest_script.run_script(
                    hostname=plan.hostname,
                    argv=plan.process.argv,
                    env=plan.process.env,
                    cwd=plan.process.cwd,
                    user=user,
                    interactive=plan.process.interactive,
                    tty=plan.process.tty,
                    network=_guest_network(plan),
                    mounts=vm_volumes.guest_lines(vm_volumes.of(plan.mounts)),
                )
            )
            for name in qemu_args.PIPES:
                for suffix in (".in", ".out"):
                    os.mkfifo(f"{files.pipe(name)}{suffix}", 0o600)
            undo.pop_all()
        return {
            **_accel_facts(),
            "kernel": kernel.version,
            "initramfs": str(boot),
            "root_disk_base": str(base),
            EXEC_TTY: "yes",
        }

    def _create_disk_vm(self, plan: RunPlan, files: VMFiles, existed: bool) -> dict[str, str]:
        disk = Path(anyos.label(plan, anyos.DISK_LABEL) or "")
        with contextlib.ExitStack() as undo:
            undo.callback(_undo_create, files, existed)
            fmt = anyos.disk_format(disk)
            rootdisk.create_overlay(disk, files.disk, fmt)
            user_data = anyos.label(plan, anyos.SEED_LABEL)
            if user_data:
                anyos.make_seed(Path(user_data), plan.id, plan.hostname, anyos.seed_path(files))
            firmware = "SeaBIOS"
            if anyos.is_uefi(plan):
                code, template = anyos.ovmf()
                target = str(anyos.efi_vars_path(files))
                run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(template), target],
                    op="create VM", id=plan.id, path=target)
                firmware = f"OVMF ({code.name})"
            undo.pop_all()
        return {
            **_accel_facts(),
            "firmware": firmware,
            "disk": str(disk),
            "disk_format": fmt,
        }

    def files(self, record: WorkloadRecord) -> VMFiles:
        return VMFiles.of(record.plan.workload_dir, record.id, self.paths.run)

    def _user(self, plan: RunPlan, spec: str) -> guest_script.GuestUser:
        return guest_script.resolve_user(
            spec, rootdisk.image_file(plan.layers, "etc/passwd"), rootdisk.image_file(plan.layers, "etc/group")
        )

    # -- start ------------------------------------------------------------------------------------

    def argv(self, record: WorkloadRecord, loadvm: str | None = None) -> list[str]:
        """The QEMU command line of this VM (also used by snapshots and the benchmark)."""
        plan, files = record.plan, self.files(record)
        if anyos.is_disk_vm(plan):
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
            isolated_macs=tuple(filter(None, (anyos.label(plan, qemu_args.ISOLATED_NICS_LABEL) or "").split(","))),
            tty=plan.process.tty,
            mounts=vm_volumes.of(plan.mounts),
            exec_tty=record.driver_info.get(EXEC_TTY) == "yes",
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
        cgroup = VMCgroup.for_workload(record.id)
        cgroup.create()
        files.sockets.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:  # a failure at any step leaves neither the cgroup nor a process in it
            cgroup.limit_memory(host_memory_limit(record.plan))
            vm_volumes.start_daemons(
                vm_volumes.of(record.plan.mounts), files.sockets, files.root / "virtiofsd.log", cgroup, record.id
            )
            pid = launch.start(argv, cgroup, files.pidfile, record.id)
        except BaseException:
            _kill_cgroup(cgroup)
            cgroup.remove()
            raise
        files.started.touch()
        files.start_offsets.write_text(json.dumps(positions))
        log.debug("VM %s started: pid %d", record.id, pid)
        if attach is not None:
            self._attach(record, files, pid, attach, positions)
        return pid

    def _attach(
        self, record: WorkloadRecord, files: VMFiles, pid: int, attach: Attach, positions: dict[str, int]
    ) -> bool:
        """Stream the VM's output (and stdin) until it ends (True) or the caller detaches (False, -t only)."""
        interactive = attach.stdin is not None and record.plan.process.interactive
        if record.plan.process.tty and not anyos.is_disk_vm(record.plan):
            resizer = agent.Resizer(self._channel(record, "ctl"))
            with TerminalSize(attach.stdout) as terminal:

                def resize() -> None:
                    changed = terminal.changed()
                    if changed is not None:
                        resizer.offer(*changed)

                detached = streams.bridge_terminal(
                    files.tty,
                    attach.stdin if interactive else None,
                    attach.stdout,
                    alive=lambda: launch.alive(pid, files.pidfile),
                    tick=resize,
                    detach_keys=DETACH_KEYS,
                )
            self._sync_log(record, final=not detached)
            return not detached
        fds = {"stdout": attach.stdout, "stderr": attach.stderr}
        feeder = None
        if interactive and attach.stdin is not None and not anyos.is_disk_vm(record.plan):
            feeder = streams.StdinFeeder(attach.stdin, files.stdin)
        last_sync = time.monotonic()
        try:
            while launch.alive(pid, files.pidfile):
                moved = streams.copy_new(files, positions, fds)
                if feeder is not None:
                    feeder.pump(0.0 if moved else 0.05)
                elif not moved:
                    launch.wait_exit(pid, files.pidfile, 0.05)
                if time.monotonic() - last_sync > 1.0:
                    self._sync_log(record, final=False)
                    last_sync = time.monotonic()
        finally:
            if feeder is not None:
                feeder.close()
        streams.copy_new(files, positions, fds)
        self._sync_log(record, final=True)
        return True

    def _sync_log(self, record: WorkloadRecord, *, final: bool) -> None:
        files = self.files(record)
        if files.root.is_dir():
            streams.sync_log(files, Path(record.plan.log_path), self.paths.locks, record.id, final=final)

    # -- observe, wait ----------------------------------------------------------------------------

    def observe(self, record: WorkloadRecord) -> Observation:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        running = launch.alive(pid, files.pidfile)
        self._sync_log(record, final=not running)
        if running:
            assert pid is not None
            return Observation(Status.PAUSED if files.paused.exists() else Status.RUNNING, pid=pid)
        if not files.started.exists():
            return Observation(Status.CREATED)
        code, finished = exit_status(files, disk_vm=anyos.is_disk_vm(record.plan))
        return Observation(Status.EXITED, exit_code=code, finished_at=finished)

    def wait(self, record: WorkloadRecord, timeout_s: float | None = None) -> Observation:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        if pid is not None:
            launch.wait_exit(pid, files.pidfile, timeout_s)
        return self.observe(record)

    # -- stop, kill, exec, stats ------------------------------------------------------------------

    def stop(self, record: WorkloadRecord, timeout_s: float) -> None:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        if not launch.alive(pid, files.pidfile):
            return
        assert pid is not None
        deadline = time.monotonic() + timeout_s
        try:
            self._polite_signal(record, record.plan.stop_signal, min(timeout_s, 5.0))
        except WorkloadError as exc:
            log.debug("stop %s: signal through the agent failed: %s", record.id, exc)
        if launch.wait_exit(pid, files.pidfile, max(0.0, deadline - time.monotonic())):
            return
        self._terminate(record, files, pid)

    def kill(self, record: WorkloadRecord, signal: int) -> None:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        if not launch.alive(pid, files.pidfile):
            raise InvalidStateError("the VM is not running", op="kill VM", id=record.id)
        assert pid is not None
        if signal == _SIGKILL:
            self._terminate(record, files, pid)
            return
        if not self._polite_signal(record, signal, AGENT_TIMEOUT_S):
            raise WorkloadError(f"the guest could not deliver signal {signal}", op="kill VM", id=record.id)

    def attach(self, record: WorkloadRecord, attach: Attach) -> bool:
        """Follow a running VM's output from now on (its terminal with -t), until it ends."""
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        if not launch.alive(pid, files.pidfile):
            raise InvalidStateError("the VM is not running", op="attach", id=record.id)
        assert pid is not None
        return self._attach(record, files, pid, attach, streams.sizes(files))

    def pause(self, record: WorkloadRecord) -> None:
        """QMP stop: the vCPUs halt, guest memory and devices stay as they are."""
        self._monitor_command(record, "stop")
        self.files(record).paused.touch()

    def unpause(self, record: WorkloadRecord) -> None:
        self._monitor_command(record, "cont")
        self.files(record).paused.unlink(missing_ok=True)

    def _monitor_command(self, record: WorkloadRecord, command: str) -> None:
        from isobox.drivers.vm import qmp  # see _polite_signal

        files = self.files(record)
        if not launch.alive(launch.read_pid(files.pidfile), files.pidfile):
            raise InvalidStateError("the VM is not running", op=f"{command} VM", id=record.id)
        with qmp.connect(files.qmp, record.id, timeout_s=AGENT_TIMEOUT_S) as monitor:
            monitor.command(command)

    def _polite_signal(self, record: WorkloadRecord, signal: int, timeout_s: float) -> bool:
        """The signal to the workload through the agent; a disk VM has none: ACPI power button."""
        if anyos.is_disk_vm(record.plan):
            from isobox.drivers.vm import qmp  # qemu.qmp pulls in asyncio: ~30 ms not every start pays

            with qmp.connect(self.files(record).qmp, record.id, timeout_s=timeout_s) as monitor:
                monitor.command("system_powerdown")
            return True
        return agent.signal_workload(self._channel(record, "ctl"), signal, timeout_s)

    def _terminate(self, record: WorkloadRecord, files: VMFiles, pid: int) -> None:
        """End the VM now: QMP quit (QEMU flushes the qcow2 overlay), SIGKILL if that fails."""
        from isobox.drivers.vm import qmp  # see _polite_signal

        files.killed.touch()
        with contextlib.suppress(WorkloadError), qmp.connect(files.qmp, record.id, timeout_s=5.0) as monitor:
            monitor.command("quit")
        if not launch.wait_exit(pid, files.pidfile, 5.0):
            launch.kill(pid, files.pidfile)
            launch.wait_exit(pid, files.pidfile, 10.0)

    def _channel(self, record: WorkloadRecord, port: str) -> agent.AgentChannel:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        return agent.AgentChannel(
            files, port, self.paths.locks, record.id, alive=lambda: launch.alive(pid, files.pidfile)
        )

    def exec(self, record: WorkloadRecord, spec: ExecSpec) -> int:
        if spec.tty and not spec.detach and not anyos.is_disk_vm(record.plan):
            return self.exec_terminal(record, spec, 0 if spec.interactive else None, 1)
        result = self.exec_capture(record, spec, stdin=0)
        write_all(1, result.stdout)
        write_all(2, result.stderr)
        return result.exit_code

    def exec_capture(
        self, record: WorkloadRecord, spec: ExecSpec, timeout_s: float | None = None, stdin: int | None = None
    ) -> agent.ExecResult:
        """Run a process in the running VM through the agent; its output is returned when it ends. With
        spec.interactive and ``stdin``, that fd is streamed to it (exec -i)."""
        plan, files = record.plan, self.files(record)
        if anyos.is_disk_vm(plan):
            raise InvalidStateError(
                "exec needs the isobox guest agent, which a disk-image VM does not have", op="exec in VM", id=record.id
            )
        if not launch.alive(launch.read_pid(files.pidfile), files.pidfile):
            raise InvalidStateError("the VM is not running", op="exec in VM", id=record.id)
        command = self._exec_command(record, spec)
        if spec.detach:
            command = f"( {command} ) </dev/null >/dev/null 2>&1 &"
        elif spec.interactive and stdin is not None:
            self._require_exec_devices(record, "-i")
            return exec_input.run(
                self._channel(record, "agent"),
                files.exec_input,
                command,
                stdin,
                lock_dir=self.paths.locks,
                workload=record.id,
                timeout_s=timeout_s,
            )
        return agent.run_script(self._channel(record, "agent"), command, timeout_s)

    def _require_exec_devices(self, record: WorkloadRecord, flag: str) -> None:
        if record.driver_info.get(EXEC_TTY) != "yes":
            raise InvalidStateError(
                f"this VM was created without the exec devices that exec {flag} needs (create it again)",
                op="exec in VM",
                id=record.id,
            )

    def _exec_command(self, record: WorkloadRecord, spec: ExecSpec) -> str:
        plan = record.plan
        env = dict(plan.process.env)
        env.update(spec.env)
        user = self._user(plan, spec.user if spec.user is not None else plan.process.user)
        return guest_script.command_line(spec.argv, tuple(env.items()), spec.cwd or plan.process.cwd, user)

    def exec_terminal(self, record: WorkloadRecord, spec: ExecSpec, stdin: int | None, stdout: int) -> int:
        """exec -t: the command on the VM's exec console, streamed both ways; returns its exit status."""
        files = self.files(record)
        self._require_exec_devices(record, "-t")
        pid = launch.read_pid(files.pidfile)
        if not launch.alive(pid, files.pidfile):
            raise InvalidStateError("the VM is not running", op="exec in VM", id=record.id)
        with TerminalSize(stdout) as terminal:
            return exec_tty.run(
                self._channel(record, "ctl"),
                files.exec_tty,
                self._exec_command(record, spec),
                stdin=stdin,
                stdout=stdout,
                terminal=terminal,
                alive=lambda: launch.alive(pid, files.pidfile),
                lock_dir=self.paths.locks,
                workload=record.id,
            )

    def stats(self, record: WorkloadRecord) -> Stats:
        return VMCgroup.for_workload(record.id).stats()

    def top(self, record: WorkloadRecord) -> list[int]:
        """Host pids of the VM: its QEMU process (the guest's processes are inside it)."""
        return pids_in(VMCgroup.for_workload(record.id))

    def sync_logs(self, record: WorkloadRecord) -> None:
        """Bring plan.log_path up to date with what QEMU wrote (the log service may call this before
        reading or while following; observe() does it too)."""
        files = self.files(record)
        self._sync_log(record, final=not launch.alive(launch.read_pid(files.pidfile), files.pidfile))

    # -- delete -----------------------------------------------------------------------------------

    def delete(self, record: WorkloadRecord) -> None:
        files = self.files(record)
        pid = launch.read_pid(files.pidfile)
        try:
            if launch.alive(pid, files.pidfile):
                assert pid is not None
                self._terminate(record, files, pid)
        finally:  # whatever happened above, nothing of the VM may stay behind
            cgroup = VMCgroup.for_workload(record.id)
            _kill_cgroup(cgroup)
            cgroup.remove()
            _remove_tree(files.root)
            _remove_tree(files.sockets)


_SIGKILL = int(signal.SIGKILL)


def _guest_network(plan: RunPlan) -> guest_script.GuestNetwork:
    interfaces = plan.network.interfaces if plan.network is not None else ()
    try:
        host_resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        host_resolv = ""
    return guest_script.GuestNetwork(
        interfaces=interfaces,
        hosts=hosts_file(plan.network, plan.hostname),
        resolv_conf=resolv_conf(plan.network, host_resolv),
    )


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


def _kill_cgroup(cgroup: VMCgroup) -> None:
    """SIGKILL whatever is left in the VM's own cgroup (only its QEMU can be there) and wait for it."""
    for _ in range(100):
        pids = pids_in(cgroup)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _undo_create(files: VMFiles, existed: bool) -> None:
    """A failed create leaves nothing: the directory if create made it, else the files it made."""
    if not existed:
        _remove_tree(files.root)
        return
    pipes = [Path(f"{files.pipe(name)}{suffix}") for name in qemu_args.PIPES for suffix in (".in", ".out")]
    for path in (files.disk, files.run_script, anyos.seed_path(files), *pipes):
        path.unlink(missing_ok=True)


def _remove_tree(root: Path) -> None:
    discard_tree(root)


def _accel_facts() -> dict[str, str]:
    """What `inspect` shows of how a VM runs: the accelerator, why it was chosen, the machine type."""
    chosen = vm_accel.detect()
    return {"accelerator": chosen.name, "accelerator_reason": chosen.reason, "machine": qemu_args.MACHINE}
