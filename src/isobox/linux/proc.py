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
