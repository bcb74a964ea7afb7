"""The raw port files → k8s-file log conversion: complete lines while running, everything when final."""

from __future__ import annotations

import os
from pathlib import Path

from isobox.drivers.logfile import read_entries
from isobox.drivers.vm.qemu_args import VMFiles
from isobox.drivers.vm.streams import copy_new, sizes, sync_log


def entries(log: Path) -> list[tuple[str, bool, bytes]]:
    return [(e.stream, e.partial, e.content) for e in read_entries(log)]


def test_sync_appends_complete_lines_then_the_rest(tmp_path: Path) -> None:
    files = VMFiles(tmp_path, tmp_path / "run")
    log, locks = tmp_path / "output.log", tmp_path / "locks"
    files.port("stdout").write_bytes(b"one\ntw")
    files.port("stderr").write_bytes(b"err\n")
    sync_log(files, log, locks, "x", final=False)
    assert entries(log) == [("stdout", False, b"one"), ("stderr", False, b"err")]
    sync_log(files, log, locks, "x", final=False)  # nothing new: nothing written twice
    assert len(entries(log)) == 2
    with open(files.port("stdout"), "ab") as handle:
        handle.write(b"o\nthree")
    sync_log(files, log, locks, "x", final=True)
    assert entries(log)[2:] == [("stdout", False, b"two"), ("stdout", True, b"three")]


def test_copy_new_moves_only_new_bytes(tmp_path: Path) -> None:
    files = VMFiles(tmp_path, tmp_path / "run")
    files.port("stdout").write_bytes(b"old")
    positions = sizes(files)
    with open(files.port("stdout"), "ab") as handle:
        handle.write(b"new")
    read_fd, write_fd = os.pipe()
    assert copy_new(files, positions, {"stdout": write_fd, "stderr": write_fd})
    assert os.read(read_fd, 100) == b"new"
    assert not copy_new(files, positions, {"stdout": write_fd, "stderr": write_fd})
