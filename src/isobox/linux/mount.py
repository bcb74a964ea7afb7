"""mount(2) and umount2(2) through ctypes (BenchExec's libc.py style: use_errno, argtypes declared once).

Why not `mount(8)`: starting a process per mount costs ~2 ms and hides errno; the overlay option
string is passed verbatim either way.
"""

from __future__ import annotations

import ctypes
import os

# The C library already loaded into this process (dlopen(NULL)), as linux/idmap.py does:
# ctypes.util.find_library("c") would run `ldconfig -p` in a subprocess on every isobox start.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.umount2.restype = ctypes.c_int

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
EINVAL = 22


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    result = _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode() if data else None)
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {fstype} on {target}: {os.strerror(errno)}", target)


def umount(target: str, *, detach: bool = False) -> None:
    result = _libc.umount2(target.encode(), MNT_DETACH if detach else 0)
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"umount {target}: {os.strerror(errno)}", target)


def mount_image_readonly(image: str, target: str) -> None:
    """Mount the ext4 file system in the file ``image`` on ``target``, read-only, through a loop device.

    mount(8) sets the loop device up (LOOP_CONFIGURE) and marks it autoclear, so unmounting ``target``
    also frees the device. noload: no journal replay, which would write; nosuid, nodev, noexec: nothing
    in the image is run or opened as a device."""
    import subprocess

    command = ["mount", "-t", "ext4", "-o", "loop,ro,noload,nosuid,nodev,noexec", image, target]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise OSError(EINVAL, f"mount {image} on {target}: no answer within 60 s", image) from exc
    if done.returncode != 0:
        raise OSError(EINVAL, f"mount {image} on {target}: {done.stderr.strip()}", image)


def is_mountpoint(path: str) -> bool:
    """True if ``path`` is listed as a mount point of this mount namespace."""
    escaped = path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
        return any(line.split(" ", 5)[4] == escaped for line in info)
