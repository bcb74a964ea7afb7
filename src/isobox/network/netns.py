"""Persistent network namespaces: a namespace kept alive by a bind mount of its nsfs file, as `ip netns` does.

The namespace must outlive the isobox process that made it (the container is started later, by another
process, and may restart), so it is pinned by bind-mounting /proc/PID/ns/net onto a file under
<run>/netns/<workload id>. `unshare --net=FILE` does exactly that from a fresh single-threaded process
(unshare(1)), so no thread of isobox ever changes namespace (DESIGN.md, habit 10). Removing it is an
unmount plus unlink; the kernel frees the namespace, and the veth end inside it, with its last reference
(network_namespaces(7)).
"""

from __future__ import annotations

import os
from pathlib import Path

from isobox.errors import HostError
from isobox.linux.mount import is_mountpoint, umount
from isobox.network.command import run


def create(path: Path) -> Path:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if is_mountpoint(str(path)):
        return path
    path.touch(mode=0o444, exist_ok=True)
    try:
        run(["unshare", f"--net={path}", "true"], op="create network namespace", id=str(path))
    except HostError:
        path.unlink(missing_ok=True)
        raise
    return path


def remove(path: Path) -> None:
    """Unpin and delete; tolerant of a namespace already gone (host reboot, earlier partial removal)."""
    if is_mountpoint(str(path)):
        try:
            umount(str(path))
        except OSError:
            umount(str(path), detach=True)  # still referenced (an nsenter running): the kernel frees it later
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise HostError(f"cannot remove the namespace file: {exc.strerror}", op="remove network namespace",
                        path=str(path)) from exc


def exists(path: Path) -> bool:
    return is_mountpoint(str(path))


def ip_batch(path: Path, commands: list[str], *, op: str, id: str = "") -> None:
    """Run `ip -batch -` inside the namespace (nsenter(1) in a child: isobox's own threads stay put)."""
    if commands:
        run(["nsenter", f"--net={path}", "ip", "-batch", "-"], input="\n".join(commands) + "\n", op=op, id=id)
