"""`docker cp` for VMs: tar streams made and unpacked by busybox in the guest, through the guest agent.

The guest's busybox runs chrooted into the image root (/root in the guest, with its volumes placed in
it), so every path, and every symlink in it, is resolved inside the workload's root as the workload
sees it. busybox itself is reached as /proc/1/root/bin/busybox: init keeps the initramfs as its root,
and the image may have no tar (or no shell) of its own. A copy into the VM streams the tar on the input
port (exec -i, drivers/vm/exec_input.py); a copy out comes back as the agent's captured output.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from typing import TYPE_CHECKING, BinaryIO

from isobox.drivers.vm import agent, exec_input, guest_script
from isobox.drivers.vm.interact import _running_pid
from isobox.errors import NotFoundError, UnsupportedError, WorkloadError
from isobox.model.archive import PathStat, split_target
from isobox.model.record import WorkloadRecord

if TYPE_CHECKING:
    from isobox.drivers.vm.driver import VMDriver

BUSYBOX = "/proc/1/root/bin/busybox"
COPY_TIMEOUT_S = 600.0


def _in_root(script: str, *args: str) -> str:
    """A guest command running ``script`` (sh, with ``args`` as $1…) chrooted into the image root."""
    words = ["chroot", guest_script.GUEST_ROOT, BUSYBOX, "sh", "-c", script, "isobox-copy", *args]
    return " ".join(shlex.quote(word) for word in words)


def stat_path(driver: VMDriver, record: WorkloadRecord, path: str) -> PathStat:
    _running_pid(driver, record, "copy")
    script = f'{BUSYBOX} stat -c "%s %f %Y" "$1" && {{ [ ! -L "$1" ] || {BUSYBOX} readlink "$1"; }}'
    result = agent.run_script(driver.channel(record, "agent"), _in_root(script, path), timeout_s=30.0)
    lines = result.stdout.decode(errors="replace").splitlines()
    if result.exit_code != 0 or not lines:
        raise NotFoundError(f"Could not find the file {path} in container {record.name}", op="copy", id=path, path=path)
    size, mode, mtime = lines[0].split()
    return PathStat(split_target(path)[1] if path.rstrip("/") else "/", int(size), int(mode, 16), float(mtime),
                    lines[1] if len(lines) > 1 else "")


def copy_from(driver: VMDriver, record: WorkloadRecord, path: str, out: BinaryIO) -> PathStat:
    info = stat_path(driver, record, path)
    head, name = split_target(path)
    script = f'cd "$1" && exec {BUSYBOX} tar cf - "$2"'
    result = agent.run_script(driver.channel(record, "agent"), _in_root(script, head, name), COPY_TIMEOUT_S)
    if result.exit_code != 0:
        detail = result.stderr.decode(errors="replace").strip() or f"exit status {result.exit_code}"
        raise WorkloadError(f"cannot read {path} in the VM: {detail}", op="copy from VM", id=record.name, path=path)
    out.write(result.stdout)
    return info


def copy_to(driver: VMDriver, record: WorkloadRecord, directory: str, tar: BinaryIO) -> None:
    _running_pid(driver, record, "copy")
    if not record.exec_devices:
        raise UnsupportedError("this VM was created before VMs had the input port (create it again)",
                               op="copy to VM", id=record.name)
    info = stat_path(driver, record, directory)
    if not info.is_dir:
        raise NotFoundError(f"Could not find the directory {directory} in container {record.name}",
                            op="copy to VM", id=directory, path=directory)
    read_fd, write_fd = os.pipe()
    feeder = threading.Thread(target=_feed, args=(tar, write_fd), name="vm-copy-in", daemon=True)
    feeder.start()
    try:
        script = f'cd "$1" && exec {BUSYBOX} tar xf -'
        result = exec_input.run(driver.channel(record, "agent"), driver.files(record).exec_input,
                                _in_root(script, directory), read_fd, lock_dir=driver.paths.locks,
                                workload=record.id, timeout_s=COPY_TIMEOUT_S)
    finally:
        os.close(read_fd)
        feeder.join(timeout=5.0)
    if result.exit_code != 0:
        detail = result.stderr.decode(errors="replace").strip() or f"exit status {result.exit_code}"
        raise WorkloadError(f"cannot write into {directory} in the VM: {detail}", op="copy to VM", id=record.name,
                            path=directory)


def _feed(tar: BinaryIO, fd: int) -> None:
    with contextlib.suppress(OSError), os.fdopen(fd, "wb") as pipe:
        while chunk := tar.read(1 << 16):
            pipe.write(chunk)
