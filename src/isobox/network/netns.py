"""Persistent network namespaces: a namespace kept alive by a bind mount of its nsfs file, as `ip netns` does.

The namespace must outlive the isobox process that made it (the container is started later, by another
process, and may restart), so it is pinned by bind-mounting /proc/PID/ns/net onto a file under
<run>/netns/<workload id>. `unshare --net=FILE` does exactly that from a fresh single-threaded process
(unshare(1)), so no thread of isobox ever changes namespace (DESIGN.md, habit 10). Removing it is an
unmount plus unlink; the kernel frees the namespace, and the veth end inside it, with its last reference
(network_namespaces(7)).

A container with its own user namespace (--userns) gets a network namespace *owned by* that user
namespace, both made here in one unshare(2) and both pinned: runc joins the pinned user namespace
instead of creating one. Otherwise `runc exec` (1.1) joins the container's user namespace first and
is then refused entry (EPERM) into a network namespace that belongs to the host's.
"""

from __future__ import annotations

import os
from pathlib import Path

from isobox.command import run
from isobox.errors import HostError
from isobox.linux import idmap
from isobox.linux.mount import MS_BIND, is_mountpoint, mount, umount


def userns_path(path: Path) -> Path:
    """Where the user namespace that owns the network namespace ``path`` is pinned (--userns)."""
    return path.with_name(path.name + ".userns")


def create(path: Path, userns: tuple[int, int] | None = None) -> Path:
    """Pin a new network namespace at ``path``; with ``userns`` (host id, count), inside a new user
    namespace mapping 0… to it, pinned at userns_path(path)."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if is_mountpoint(str(path)):
        return path
    path.touch(mode=0o444, exist_ok=True)
    try:
        if userns is None:
            run(["unshare", f"--net={path}", "true"], op="create network namespace", id=str(path))
        else:
            _create_in_userns(path, userns)
    except BaseException:
        remove(path)
        raise
    return path


def _create_in_userns(path: Path, userns: tuple[int, int]) -> None:
    """Both namespaces from one unshare(2), with the ids mapped, pinned by bind mounts from outside
    (unshare's own --user=FILE pinning is refused here with EPERM)."""
    user = userns_path(path)
    user.touch(mode=0o444, exist_ok=True)
    try:
        with idmap.mapped_helper(*userns, "--net") as pid:
            mount(f"/proc/{pid}/ns/user", str(user), "", MS_BIND)
            mount(f"/proc/{pid}/ns/net", str(path), "", MS_BIND)
    except OSError as exc:
        raise HostError(
            f"cannot create the namespaces: {exc.strerror or exc}", op="create network namespace", path=str(path)
        ) from exc


def remove(path: Path) -> None:
    """Unpin and delete (and the owning user namespace, if isobox made one); tolerant of a namespace
    already gone (host reboot, earlier partial removal)."""
    _unpin(path)
    _unpin(userns_path(path))


def _unpin(path: Path) -> None:
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
