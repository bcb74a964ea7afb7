from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from isobox.drivers.vm import kernel
from isobox.drivers.vm.initramfs import CpioWriter, guest_file


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    entries, offset = {}, 0
    while True:
        assert data[offset : offset + 6] == b"070701"
        fields = [int(data[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        name_start = offset + 110
        name = data[name_start : name_start + name_size - 1].decode()
        data_start = name_start + name_size + (-(110 + name_size) % 4)
        body = data[data_start : data_start + size]
        offset = data_start + size + (-size % 4)
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, body)


def test_cpio_round_trip() -> None:
    cpio = CpioWriter()
    cpio.directory("bin")
    cpio.file("bin/busybox", b"\x7fELF...", 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("init", b"#!/bin/sh\n", 0o755)
    entries = parse_newc(cpio.finish())
    assert entries["bin"][0] == 0o040755
    assert entries["bin/busybox"] == (0o100755, b"\x7fELF...")
    assert entries["bin/sh"] == (0o120777, b"busybox")
    assert entries["init"][1] == b"#!/bin/sh\n"


def test_guest_scripts_are_packaged() -> None:
    assert guest_file("init.sh").startswith(b"#!/bin/busybox sh")
    assert b"agent_exec_loop" in guest_file("agent.sh")


def _elf_with_modinfo(payload: bytes) -> bytes:
    names = b"\0.modinfo\0.shstrtab\0"
    body_off = 64
    names_off = body_off + len(payload)
    shoff = names_off + len(names)
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2)
    null = bytes(64)
    modinfo = struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, body_off, len(payload), 0, 0, 1, 0)
    strtab = struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, names_off, len(names), 0, 0, 1, 0)
    return header + payload + names + null + modinfo + strtab


def test_modinfo_reads_depends(tmp_path: Path) -> None:
    module = tmp_path / "virtio_blk.ko"
    module.write_bytes(_elf_with_modinfo(b"license=GPL\0depends=virtio,virtio_ring\0name=virtio_blk\0"))
    info = kernel.modinfo(module)
    assert info["depends"] == ["virtio,virtio_ring"]
    assert info["name"] == ["virtio_blk"]


@pytest.mark.skipif(not os.path.exists("/var/lib/isobox/kernel/current/vmlinuz"), reason="no guest kernel")
def test_load_order_of_the_installed_kernel() -> None:
    found = kernel.find(Path("/var/lib/isobox/kernel"))
    names = [p.name.removesuffix(".ko") for p in kernel.load_order(found)]
    assert set(kernel.WANTED_MODULES) <= set(names)
    assert names.index("virtio") < names.index("virtio_pci") < names.index("virtio_blk")
