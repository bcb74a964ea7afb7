"""ContainerDriver: the Driver protocol over an OCI runtime (crun/runc) supervised by conmon."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from isobox.config import Paths
from isobox.drivers.base import Attach, ExecSpec, TerminalSize
from isobox.drivers.container import bundle, checkpoint, monitor
from isobox.drivers.container.runtime import Runtime, probe
from isobox.errors import HostError, InvalidArgumentError, InvalidStateError, NotFoundError, WorkloadError
from isobox.linux import cgroups
from isobox.model.network import NetworkMode
from isobox.model.plan import RunPlan
from isobox.model.record import Observation, Stats, WorkloadRecord
from isobox.model.spec import RestartPolicy
from isobox.model.status import Status
from isobox.model.users import resolve_user
from isobox.storage import rootfs as rootfs_access

log = logging.getLogger(__name__)
POLL_S = 0.01


class ContainerDriver:
    kind = "container"

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

    def create(self, plan: RunPlan) -> dict[str, str]:
        return bundle.prepare(plan, self.runtime.name)

    def start(
        self, record: WorkloadRecord, attach: Attach | None = None, *, during_create: Callable[[], None] | None = None
    ) -> int:
        plan = record.plan
        workdir = Path(plan.workload_dir)
        conmon_plan = self._prepare_start(record, attach)
        pid = self._create(conmon_plan, during_create)
        if attach is None:
            self.runtime.run("start", plan.id, op="start", workload=plan.id)
            return pid
        sock = monitor.connect_attach(workdir)
        with contextlib.closing(sock), TerminalSize(attach.stdout if plan.process.tty else -1) as size:

            def resize() -> None:
                changed = size.changed()
                if changed is not None:
                    monitor.resize(workdir, *changed)

            resize()  # before the process runs: it starts with the caller's size
            self.runtime.run("start", plan.id, op="start", workload=plan.id)
            stdin = attach.stdin if plan.process.interactive else None
            monitor.pump(sock, stdin, attach.stdout, attach.stderr, resize if plan.process.tty else None)
        return pid

    def attach(self, record: WorkloadRecord, attach: Attach) -> bool:
        plan = record.plan
        workdir = Path(plan.workload_dir)
        try:
            sock = monitor.connect_attach(workdir)
        except OSError as exc:
            raise InvalidStateError(f"cannot attach to {record.name}: {exc.strerror or exc}", op="attach",
                                    id=record.id) from exc
        tty = plan.process.tty
        with contextlib.closing(sock), TerminalSize(attach.stdout if tty else -1) as size:

            def resize() -> None:
                changed = size.changed()
                if changed is not None:
                    monitor.resize(workdir, *changed)

            stdin = attach.stdin if plan.process.interactive else None
            detached = monitor.pump(sock, stdin, attach.stdout, attach.stderr, resize if tty else None,
                                    monitor.DETACH_KEYS if tty else None)
        return not detached

    def _create(self, conmon_plan: monitor.ConmonPlan, during: Callable[[], None] | None) -> int:
        """conmon + `runtime create`, running ``during`` meanwhile; if that fails, the created container is
        deleted (its process never ran) and the failure raised."""
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
        for stale in (self.exit_dir / plan.id, workdir / "persist" / "exit", workdir / "persist" / "oom"):
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
        code = self._exit_code(plan)
        if code is not None:
            oom = (Path(plan.workload_dir) / "persist" / "oom").exists()
            finished = self._exit_time(plan)
            return Observation(Status.EXITED, 0, code, oom, finished)
        state = self.runtime.state(plan.id) if record.status is not Status.CREATED else None
        if state is None:
            if record.status in (Status.RUNNING, Status.PAUSED):
                # The runtime forgot it (host reboot) and conmon recorded nothing: it died with the host.
                return Observation(Status.EXITED, 0, record.exit_code if record.exit_code is not None else 255)
            return Observation(record.status, 0, record.exit_code, record.oom_killed, record.finished_at)
        status = {"running": Status.RUNNING, "paused": Status.PAUSED, "created": Status.RUNNING}.get(
            str(state.get("status")), Status.EXITED
        )
        return Observation(status, int(state.get("pid") or 0))

    def wait(self, record: WorkloadRecord, timeout_s: float | None = None) -> Observation:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delay = POLL_S
        while True:
            code = self._exit_code(record.plan)
            if code is not None or (deadline is not None and time.monotonic() >= deadline):
                return self.observe(record)
            conmon = self._conmon_pid(record.plan)
            if conmon is None and self.runtime.state(record.plan.id) is None:
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
        try:
            self.runtime.run("kill", "--all", record.plan.id, "KILL", op="stop", workload=record.id)
        except (NotFoundError, WorkloadError):
            pass
        self.wait(record, 10.0)

    def kill(self, record: WorkloadRecord, signal_number: int) -> None:
        self.runtime.run("kill", record.plan.id, str(signal_number), op="kill", workload=record.id)

    def pause(self, record: WorkloadRecord) -> None:
        """The freezer cgroup (v1 freezer.state, v2 cgroup.freeze), through the runtime."""
        self.runtime.run("pause", record.plan.id, op="pause", workload=record.id)

    def unpause(self, record: WorkloadRecord) -> None:
        self.runtime.run("resume", record.plan.id, op="unpause", workload=record.id)

    def exec(self, record: WorkloadRecord, spec: ExecSpec) -> int:
        plan = record.plan
        root = bundle.rootfs_dir(plan)
        user = resolve_user(
            spec.user if spec.user is not None else plan.process.user,
            rootfs_access.read_text_in_root(root, "/etc/passwd"),
            rootfs_access.read_text_in_root(root, "/etc/group"),
        )
        config = json.loads((Path(plan.workload_dir) / "config.json").read_text())
        process = dict(config["process"])
        env = dict(item.split("=", 1) for item in process["env"])
        env.update(dict(spec.env))
        process.update(
            terminal=spec.tty,
            args=list(spec.argv),
            env=[f"{k}={v}" for k, v in env.items()],
            cwd=bundle.safe_cwd(root, spec.cwd) if spec.cwd else process["cwd"],
            user={"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
        )
        spec_path = Path(plan.workload_dir) / f"exec-{os.getpid()}-{time.monotonic_ns()}.json"
        spec_path.write_text(json.dumps(process))
        argv = self.runtime.argv("exec", "--process", str(spec_path))
        if spec.tty:
            argv.append("--tty")
        if spec.detach:
            argv.append("--detach")
        argv.append(plan.id)
        try:
            return _run_foreground(argv, spec.interactive)
        finally:
            spec_path.unlink(missing_ok=True)

    def stats(self, record: WorkloadRecord) -> Stats:
        values = cgroups.read_stats(cgroups.workload_path(record.plan.id))
        return Stats(values["cpu_ns"], values["memory_bytes"], values["memory_limit_bytes"], values["pids"])

    def top(self, record: WorkloadRecord) -> list[int]:
        if self.runtime.state(record.plan.id) is None:
            raise InvalidStateError(f"container {record.name} is not running", op="top", id=record.id)
        return self.runtime.pids(record.plan.id)

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
            except OSError:
                continue
            if text:
                return int(text)
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
        try:
            pid = int((Path(plan.workload_dir) / "conmon.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if cmdline and cmdline[0].endswith(b"conmon") and plan.id.encode() in cmdline:
            return pid
        return None

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


def _run_foreground(argv: list[str], interactive: bool) -> int:
    import subprocess

    stdin = None if interactive else subprocess.DEVNULL
    done = subprocess.run(argv, stdin=stdin, stdout=sys.stdout.fileno(), stderr=sys.stderr.fileno(), check=False)
    return done.returncode
