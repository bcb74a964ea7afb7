"""Talking to a running VM: its output and stdin (start attached, attach), exec through the guest agent
(plain, -i on the input port, -t on the exec console), the serial console of a disk-image VM, and `top`.

Capability checks (a disk VM has no agent, an old VM no exec devices) are the service's, through
VMDriver.missing_capabilities, before any of this runs.
"""

from __future__ import annotations

import os
import select
import socket
import time
from typing import TYPE_CHECKING

from isobox.drivers.base import PolledTerminalSize, TerminalSize, write_all
from isobox.drivers.vm import agent, anyos, exec_input, exec_tty, guest_script, launch, rootdisk, streams
from isobox.errors import InvalidStateError, WorkloadError
from isobox.model.record import ProcessTable, WorkloadRecord
from isobox.model.streams import Attach, ExecSpec

if TYPE_CHECKING:
    from isobox.drivers.vm.driver import VMDriver

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, as Docker's default
CONSOLE_DETACH_KEY = b"\x1d"  # Ctrl-], as virsh console and telnet
TOP_TITLES = ("PID", "USER", "TIME", "COMMAND")


def _running_pid(driver: VMDriver, record: WorkloadRecord, op: str) -> int:
    files = driver.files(record)
    pid = launch.read_pid(files.pidfile)
    if not launch.alive(pid, files.pidfile):
        raise InvalidStateError("the VM is not running", op=op, id=record.id)
    assert pid is not None
    return pid


# ---- output and stdin ---------------------------------------------------------------------------


def attach(driver: VMDriver, record: WorkloadRecord, streams_: Attach) -> bool:
    """Follow a running VM's output from now on (its terminal with -t), until it ends."""
    pid = _running_pid(driver, record, "attach")
    return stream(driver, record, pid, streams_, streams.sizes(driver.files(record)))


def stream(driver: VMDriver, record: WorkloadRecord, pid: int, attach_: Attach, positions: dict[str, int]) -> bool:
    """Stream the VM's output (and stdin) until it ends (True) or the caller detaches (False, -t only)."""
    files = driver.files(record)
    interactive = attach_.stdin is not None and record.plan.process.interactive
    disk_vm = record.plan.disk_boot is not None
    if record.plan.process.tty and not disk_vm:
        resizer = agent.Resizer(driver.channel(record, "ctl"))
        with TerminalSize(attach_.stdout) as terminal:

            def resize() -> None:
                changed = terminal.changed()
                if changed is not None:
                    resizer.offer(*changed)

            detached = streams.bridge_terminal(
                files.tty,
                attach_.stdin if interactive else None,
                attach_.stdout,
                alive=lambda: launch.alive(pid, files.pidfile),
                tick=resize,
                detach_keys=DETACH_KEYS,
            )
        driver.sync_log(record, final=not detached)
        return not detached
    fds = {"stdout": attach_.stdout, "stderr": attach_.stderr}
    feeder = None
    if interactive and attach_.stdin is not None and not disk_vm:
        feeder = streams.StdinFeeder(attach_.stdin, files.stdin)
    last_sync = time.monotonic()
    try:
        while launch.alive(pid, files.pidfile):
            moved = streams.copy_new(files, positions, fds)
            if feeder is not None:
                feeder.pump(0.0 if moved else 0.05)
            elif not moved:
                launch.wait_exit(pid, files.pidfile, 0.05)
            if time.monotonic() - last_sync > 1.0:
                driver.sync_log(record, final=False)
                last_sync = time.monotonic()
    finally:
        if feeder is not None:
            feeder.close()
    streams.copy_new(files, positions, fds)
    driver.sync_log(record, final=True)
    return True


def resize(driver: VMDriver, record: WorkloadRecord, rows: int, columns: int) -> None:
    """A new size for the workload's terminal (the agent keeps it for a terminal not yet held open)."""
    _running_pid(driver, record, "resize")
    agent.resize_terminal(driver.channel(record, "ctl"), "tty", rows, columns)


# ---- exec ---------------------------------------------------------------------------------------


def exec(driver: VMDriver, record: WorkloadRecord, spec: ExecSpec, streams_: Attach) -> int:
    if spec.tty and not spec.detach:
        return exec_terminal(driver, record, spec, streams_.stdin if spec.interactive else None, streams_.stdout,
                             handed=streams_.handed_terminal)
    result = exec_capture(driver, record, spec, stdin=streams_.stdin)
    write_all(streams_.stdout, result.stdout)
    write_all(streams_.stderr, result.stderr)
    return result.exit_code


def exec_capture(
    driver: VMDriver, record: WorkloadRecord, spec: ExecSpec, timeout_s: float | None = None, stdin: int | None = None
) -> agent.ExecResult:
    """Run a process in the running VM through the agent; its output is returned when it ends. With
    spec.interactive and ``stdin``, that fd is streamed to it (exec -i)."""
    _running_pid(driver, record, "exec in VM")
    command = command_line(driver, record, spec)
    if spec.detach:
        command = f"( {command} ) </dev/null >/dev/null 2>&1 &"
    elif spec.interactive and stdin is not None:
        return exec_input.run(
            driver.channel(record, "agent"),
            driver.files(record).exec_input,
            command,
            stdin,
            lock_dir=driver.paths.locks,
            workload=record.id,
            timeout_s=timeout_s,
        )
    return agent.run_script(driver.channel(record, "agent"), command, timeout_s)


def command_line(driver: VMDriver, record: WorkloadRecord, spec: ExecSpec) -> str:
    plan = record.plan
    env = dict(plan.process.env)
    env.update(spec.env)
    user = driver.user(plan, spec.user if spec.user is not None else plan.process.user)
    return guest_script.command_line(spec.argv, tuple(env.items()), spec.cwd or plan.process.cwd, user)


def exec_terminal(driver: VMDriver, record: WorkloadRecord, spec: ExecSpec, stdin: int | None, stdout: int,
                  *, handed: bool = False) -> int:
    """exec -t: the command on the VM's exec console, streamed both ways; returns its exit status."""
    files = driver.files(record)
    pid = _running_pid(driver, record, "exec in VM")
    with (PolledTerminalSize(stdout) if handed else TerminalSize(stdout)) as terminal:
        return exec_tty.run(
            driver.channel(record, "ctl"),
            files.exec_tty,
            command_line(driver, record, spec),
            stdin=stdin,
            stdout=stdout,
            terminal=terminal,
            alive=lambda: launch.alive(pid, files.pidfile),
            lock_dir=driver.paths.locks,
            workload=record.id,
        )


# ---- top ----------------------------------------------------------------------------------------

# The guest's processes under the workload (init records its pid in /run/workload.pid), from busybox ps in
# the initramfs (which has no TIME column: the CPU time comes from /proc/PID/stat, utime + stime in USER_HZ
# ticks of 1/100 s); the kernel's threads and isobox's own init and agent are not the workload's.
_TOP_SCRIPT = r"""
# A VM that is still booting starts its workload within moments: wait for it, a bounded while.
i=0; while [ ! -s /run/workload.pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
root=$(cat /run/workload.pid 2>/dev/null) || exit 3
ps -o pid,ppid,user,args | awk -v root="$root" '
NR > 1 { parent[$1] = $2; line[$1] = $0; order[n++] = $1 }
END {
    for (i = 0; i < n; i++) {
        p = order[i]; q = p
        while (q != "" && q != root && q != 0 && q != 1) q = parent[q]
        if (q != root) continue
        s = ""; getline s < ("/proc/" p "/stat"); close("/proc/" p "/stat")
        split(substr(s, index(s, ") ") + 2), f, " ")
        t = int((f[12] + f[13]) / 100)
        rest = line[p]; sub(/^ *[0-9]+ +[0-9]+ +/, "", rest)
        user = rest; sub(/ .*/, "", user); sub(/^[^ ]+ +/, "", rest)
        printf "%s\t%s\t%02d:%02d:%02d\t%s\n", p, user, t / 3600, t / 60 % 60, t % 60, rest
    }
}'
"""


def top(driver: VMDriver, record: WorkloadRecord) -> ProcessTable:
    _running_pid(driver, record, "top")
    result = agent.run_script(driver.channel(record, "agent"), _TOP_SCRIPT, timeout_s=10.0)
    if result.exit_code != 0:
        detail = result.stderr.decode(errors="replace").strip() or f"exit status {result.exit_code}"
        raise WorkloadError(f"cannot list the guest's processes: {detail}", op="top", id=record.name)
    # busybox ps names users from the initramfs's files, which list none: the image's own names them.
    passwd = rootdisk.image_file(record.plan.layers, "etc/passwd") or ""
    names = {row[2]: row[0] for row in (line.split(":") for line in passwd.splitlines()) if len(row) > 2}
    rows = []
    for line in result.stdout.decode(errors="replace").splitlines():
        fields = line.split("\t", 3)
        if len(fields) == 4:
            pid, user, cputime, args = fields
            rows.append((pid, names.get(user, user), cputime, args))
    return ProcessTable(TOP_TITLES, tuple(rows))


# ---- the serial console of a disk-image VM ------------------------------------------------------


def console(driver: VMDriver, record: WorkloadRecord, attach_: Attach) -> None:
    """Copy the caller's input to the console and the console to its output until Ctrl-], end of input,
    or the VM ends."""
    _running_pid(driver, record, "console")
    path = anyos.console_socket(driver.files(record))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        try:
            conn.connect(str(path))
        except OSError as exc:
            raise WorkloadError(f"cannot connect to the console: {exc.strerror or exc}", op="console",
                                id=record.name, path=str(path)) from exc
        _bridge(conn, attach_.stdin, attach_.stdout)


def _bridge(conn: socket.socket, stdin: int | None, stdout: int) -> None:
    sources: list[socket.socket | int] = [conn] + ([stdin] if stdin is not None else [])
    while True:
        ready, _, _ = select.select(sources, [], [])
        if conn in ready:
            data = conn.recv(65536)
            if not data:
                return
            write_all(stdout, data)
        if stdin is not None and stdin in ready:
            data = os.read(stdin, 4096)
            if data and CONSOLE_DETACH_KEY not in data:
                conn.sendall(data)
                continue
            conn.sendall(data.split(CONSOLE_DETACH_KEY)[0])
            _detach(conn, stdout)
            return


def _detach(conn: socket.socket, stdout: int, timeout_s: float = 2.0) -> None:
    """Half-close, so QEMU reads what was sent before it sees the end (a plain close would make it
    drop unread input: chardev/char-socket.c, tcp_chr_hup), and show output until it disconnects."""
    conn.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([conn], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return
        data = conn.recv(65536)
        if not data:
            return
        write_all(stdout, data)
