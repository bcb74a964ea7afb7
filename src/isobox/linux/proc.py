"""Facts about this process read from /proc."""

from __future__ import annotations

from pathlib import Path


def bounding_capabilities() -> int:
    """This process's capability bounding set (a container can never get more than this)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return 0


_X32_SYSCALL_BIT = 0x40000000
_SYS_GETPID = 39


def x32_abi_enabled() -> bool:
    """Whether this x86-64 kernel runs x32 system calls (CONFIG_X86_X32_ABI, off in most distribution
    kernels): getpid with the x32 bit set returns the pid, or fails with ENOSYS when x32 is off."""
    import ctypes
    import os

    if os.uname().machine != "x86_64":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.syscall(_X32_SYSCALL_BIT | _SYS_GETPID) == os.getpid())


def process_alive(pid: int | None, marker: bytes) -> bool:
    """Whether ``pid`` is a live (not zombie) process with ``marker`` as one of its arguments (an exact
    element of its command line): pids are
    reused, so a pid file alone does not say the process is still the one that wrote it (conmon, QEMU,
    dnsmasq and virtiofsd are all checked this way)."""
    if not pid:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and marker in argv


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def process_argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a process that has not finished exiting (not yet a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def security_modules() -> frozenset[str]:
    """The Linux security modules the kernel runs (/sys/kernel/security/lsm: "capability,yama,apparmor"),
    and selinux when its file system says it is enabled."""
    found: set[str] = set()
    try:
        found.update(m for m in Path("/sys/kernel/security/lsm").read_text().strip().split(",") if m)
    except OSError:
        pass
    if Path("/sys/fs/selinux/enforce").exists():
        found.add("selinux")
    return frozenset(found)
