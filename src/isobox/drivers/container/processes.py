"""`top` of a container: its processes as the host sees them, in the columns of `ps -ef` (Docker's default
for `docker top`: UID PID PPID C STIME TTY TIME CMD), read from /proc."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

from isobox.model.record import ProcessTable

TITLES = ("UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD")


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _row(pid: int, boot: float, ticks: int) -> tuple[str, ...] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None  # ended meanwhile
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    ppid, tty_nr = fields[1], int(fields[4])
    cpu_s = (int(fields[11]) + int(fields[12])) // ticks
    started = boot + int(fields[19]) / ticks
    elapsed = max(time.time() - started, 1.0)
    percent = int(100 * cpu_s / elapsed)
    stime = time.strftime("%H:%M" if time.time() - started < 86400 else "%b%d", time.localtime(started))
    args = cmdline.replace(b"\0", b" ").decode(errors="replace").strip() or f"[{comm}]"
    cputime = f"{cpu_s // 3600:02d}:{cpu_s // 60 % 60:02d}:{cpu_s % 60:02d}"
    tty = "?" if tty_nr == 0 else f"pts/{tty_nr & 0xFF}"
    return (_user(uid), str(pid), ppid, str(percent), stime, tty, cputime, args)


def host_processes(pids: list[int]) -> ProcessTable:
    boot, ticks = _boot_time(), os.sysconf("SC_CLK_TCK")
    rows = [row for pid in sorted(pids) if (row := _row(pid, boot, ticks)) is not None]
    return ProcessTable(TITLES, tuple(rows))
