"""The workload's output: raw port files written by QEMU, turned into the shared k8s-file log.

Why QEMU writes raw files and isobox converts them when it reads: the log must be complete even when
no isobox process lives while the VM runs, and nothing but QEMU is guaranteed to be there. Framing
the lines in the guest was tried and rejected: busybox `date` has no sub-second time and busybox
`ts` buffers its output, so lines would arrive late and out of order. So stdout and stderr each go
to their own virtio-serial port and file (kept apart by construction), and every reader (observe,
wait, attach, logs) first appends the new complete lines to plan.log_path under a lock, remembering
how far it got in ``log.offsets``. A line's timestamp is therefore the time isobox first saw it: exact
while attached, the time of the next read otherwise. Partial last lines are written when the VM is
gone (the stream is then final), as "P" entries.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from isobox.drivers.logfile import LogWriter
from isobox.drivers.vm.qemu_args import VMFiles
from isobox.state.locks import locked

STREAMS = ("stdout", "stderr")


def _offsets_path(files: VMFiles) -> Path:
    return files.root / "log.offsets"


def _read_offsets(files: VMFiles) -> dict[str, int]:
    try:
        data = json.loads(_offsets_path(files).read_text())
        return {name: int(data.get(name, 0)) for name in STREAMS}
    except (OSError, ValueError):
        return dict.fromkeys(STREAMS, 0)


def read_from(path: Path, offset: int, limit: int = 8 * 1024 * 1024) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(limit)
    except FileNotFoundError:
        return b""


def sync_log(files: VMFiles, log_path: Path, lock_dir: Path, key: str, *, final: bool) -> None:
    """Append what QEMU wrote since the last sync to the log (complete lines; everything if final)."""
    with locked(lock_dir, f"vm-log-{key}"):
        offsets = _read_offsets(files)
        chunks: dict[str, bytes] = {}
        for stream in STREAMS:
            data = read_from(files.port(stream), offsets[stream])
            if not final:
                data = data[: data.rfind(b"\n") + 1]
            chunks[stream] = data
        if not any(chunks.values()):
            return
        writer = LogWriter(log_path)
        try:
            for stream, data in chunks.items():
                writer.write(stream, data)
                offsets[stream] += len(data)
        finally:
            writer.close()  # flushes a partial last line: present only when final
        temporary = _offsets_path(files).with_suffix(".tmp")
        temporary.write_text(json.dumps(offsets))
        os.replace(temporary, _offsets_path(files))


def sizes(files: VMFiles) -> dict[str, int]:
    result = {}
    for stream in STREAMS:
        try:
            result[stream] = files.port(stream).stat().st_size
        except FileNotFoundError:
            result[stream] = 0
    return result


def copy_new(files: VMFiles, positions: dict[str, int], fds: dict[str, int]) -> bool:
    """Write what appeared since ``positions`` to the caller's fds; True if anything did."""
    moved = False
    for stream in STREAMS:
        data = read_from(files.port(stream), positions[stream], 1024 * 1024)
        if data:
            write_all(fds[stream], data)
            positions[stream] += len(data)
            moved = True
    return moved


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return  # the reader went away; the log still has everything
        view = view[written:]
