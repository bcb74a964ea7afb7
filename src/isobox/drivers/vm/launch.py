"""Starting a daemonized QEMU inside its cgroup, and finding out whether it still runs.

QEMU is not isobox's child for long: with -daemonize the process isobox starts forks, the child
becomes the VM and the parent exits once the VM is set up (docs/system/invocation, -daemonize), so
the VM outlives isobox and is re-parented to init. Its pid comes from -pidfile. A pid alone can be
reused after QEMU exits, so "alive" also checks that /proc/PID/cmdline names this VM's pid file.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path

from isobox.errors import HostError, WorkloadError
from isobox.linux.cgroups import WorkloadCgroup
from isobox.linux.proc import process_alive, read_pid

__all__ = ["alive", "kill", "read_pid", "start", "wait_exit"]

# The launcher joins the cgroup(s) and then becomes QEMU: no fork from Python with preexec_fn
# (DESIGN.md, habit 10), and QEMU and every thread it makes start inside the cgroup.
JOIN_AND_EXEC = 'for procs in $ISOBOX_CGROUP_PROCS; do echo $$ > "$procs" || exit 125; done; exec "$@"'


def start(argv: list[str], cgroup: WorkloadCgroup, pidfile: Path, workload: str, timeout_s: float = 60.0) -> int:
    """Run QEMU daemonized in the cgroup; return the VM's pid."""
    env = dict(os.environ, ISOBOX_CGROUP_PROCS=" ".join(str(p) for p in cgroup.procs_files))
    command = ["/bin/sh", "-c", JOIN_AND_EXEC, "isobox-qemu", *argv]
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise HostError("qemu-system-x86_64 is not installed (run scripts/setup)", op="start VM", id=workload) from exc
    except subprocess.TimeoutExpired as exc:
        raise WorkloadError(f"QEMU did not daemonize within {timeout_s:.0f} s", op="start VM", id=workload) from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
        raise WorkloadError(f"QEMU failed to start: {detail}", op="start VM", id=workload)
    pid = read_pid(pidfile)
    if pid is None:
        raise WorkloadError("QEMU started but wrote no pid file", op="start VM", id=workload, path=str(pidfile))
    return pid


def alive(pid: int | None, pidfile: Path) -> bool:
    """Whether ``pid`` is still the QEMU of this VM (its command line names the VM's pid file)."""
    return process_alive(pid, str(pidfile).encode())


def wait_exit(pid: int, pidfile: Path, timeout_s: float | None) -> bool:
    """Block until the VM process is gone (pidfd: no polling); False on timeout."""
    if not alive(pid, pidfile):
        return True
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while alive(pid, pidfile):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            # Readable once the process is gone; re-check alive() in case it became a zombie.
            select.select([fd], [], [], 0.5 if remaining is None else min(0.5, remaining))
        return True
    finally:
        os.close(fd)


def kill(pid: int | None, pidfile: Path, sig: int = signal.SIGKILL) -> None:
    if alive(pid, pidfile):
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
