"""Any-OS VMs: a non-OCI disk image booted through firmware (SeaBIOS), console output in the log.

The disk is made here: one MBR boot sector (hand-assembled 16-bit code) that writes a line to the
first serial port and powers the machine off through the ACPI PM1a control register (port 0x604 on
QEMU's pc machine, 0xb004 on older firmware setups), so the test needs no downloaded OS image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobox.drivers.base import require
from isobox.drivers.logfile import read_entries
from isobox.drivers.vm import anyos
from isobox.drivers.vm.driver import VMDriver
from isobox.errors import InvalidArgumentError, UnsupportedError
from isobox.model.capability import Capability
from isobox.model.record import WorkloadRecord
from isobox.model.status import Status
from isobox.service import vms
from isobox.service.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(120)]

MESSAGE = b"isobox firmware boot ok\r\n\0"
# cli; xor ax,ax; mov ds,ax; mov si,msg; next: lodsb; test al,al; jz done; mov bl,al;
# wait: mov dx,0x3fd; in al,dx; test al,0x20; jz wait; mov al,bl; mov dx,0x3f8; out dx,al; jmp next;
# done: mov dx,0x604; mov ax,0x2000; out dx,ax; mov dx,0xb004; out dx,ax; hang: hlt; jmp hang
CODE = bytes.fromhex("FA31C08ED8BE2D7CAC84C0741288C3BAFD03ECA82074F888D8BAF803EEEBE9BA0406B80020EFBA04B0EFF4EBFD")


# The same print loop at 0x7C00, then a console echo loop: wait for a received byte (LSR bit 0),
# read it, power off on 'q', else write it back: rx: mov dx,0x3fd; in al,dx; test al,1; jz rx;
# mov dx,0x3f8; in al,dx; cmp al,'q'; je off; out dx,al; jmp rx; off: (the power-off sequence above)
ECHO_CODE = bytes.fromhex(
    "FA31C08ED8BE407CAC84C0741288C3BAFD03ECA82074F888D8BAF803EEEBE9"
    "BAFD03ECA80174F8BAF803EC3C717403EEEBED"
    "BA0406B80020EFBA04B0EFF4EBFD"
)


def boot_disk(path: Path, code: bytes = CODE) -> Path:
    sector = code + MESSAGE
    path.write_bytes(sector + bytes(510 - len(sector)) + b"\x55\xaa" + bytes(1024 * 1024 - 512))
    return path


def make(
    ctx: Context, driver: VMDriver, disk: Path, user_data: Path | None = None, cdrom: Path | None = None
) -> WorkloadRecord:
    """A disk-image VM through the service (`isobox vm create`), driven below by ``driver``."""
    return vms.create_disk_vm(ctx, disk, cdrom=cdrom, cloud_init=user_data)


def test_firmware_boot_of_a_disk_image(ctx: Context, tmp_path: Path) -> None:
    driver = VMDriver(ctx.paths)
    disk = boot_disk(tmp_path / "boot.raw")
    before = disk.read_bytes()
    record = make(ctx, driver, disk)
    try:
        assert record.driver_info["disk_format"] == "raw"
        driver.start(record)
        observation = driver.wait(record, 60)
        assert (observation.status, observation.exit_code) == (Status.EXITED, 0)
        lines = [e.content for e in read_entries(Path(record.plan.log_path))]
        assert b"isobox firmware boot ok\r" in lines
        with pytest.raises(UnsupportedError, match="has no isobox guest agent"):
            require(driver, record, Capability.EXEC, op="exec")
    finally:
        driver.delete(record)
    assert disk.read_bytes() == before  # the VM wrote only to its overlay


@pytest.mark.skipif(shutil.which("genisoimage") is None, reason="genisoimage not installed")
def test_cloud_init_seed(ctx: Context, tmp_path: Path) -> None:
    driver = VMDriver(ctx.paths)
    user_data = tmp_path / "user-data"
    user_data.write_text("#cloud-config\nhostname: seeded\n")
    record = make(ctx, driver, boot_disk(tmp_path / "boot.raw"), user_data)
    try:
        seed = anyos.seed_path(driver.files(record))
        volume = subprocess.run(["isoinfo", "-d", "-i", str(seed)], capture_output=True, text=True).stdout
        assert "Volume id: cidata" in volume
        listing = subprocess.run(["isoinfo", "-R", "-f", "-i", str(seed)], capture_output=True, text=True).stdout
        assert set(listing.split()) == {"/user-data", "/meta-data"}
        assert f"file={seed}" in " ".join(driver.argv(record))
    finally:
        driver.delete(record)


def test_console_attach_echo_and_power_off(isobox_root: Path, tmp_path: Path) -> None:
    """The CLI end to end: `isobox vm create --start`, `isobox console` (bytes both ways), power-off."""
    disk = boot_disk(tmp_path / "echo.raw", ECHO_CODE)
    cli = [sys.executable, "-m", "isobox.cli.main"]
    env = dict(os.environ, ISOBOX_ROOT=str(isobox_root))
    subprocess.run(
        [*cli, "vm", "create", "--disk", str(disk), "--name", "echo", "--start"],
        env=env,
        check=True,
        capture_output=True,
    )
    try:
        console = subprocess.Popen(
            [*cli, "console", "echo"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert console.stdin is not None and console.stdout is not None
        time.sleep(1.0)
        console.stdin.write(b"ping")
        console.stdin.flush()
        deadline, seen = time.monotonic() + 20, b""
        while b"ping" not in seen and time.monotonic() < deadline:
            seen += os.read(console.stdout.fileno(), 100)
        console.stdin.write(b"q")  # the guest powers off
        console.stdin.close()  # end of input detaches the console
        assert console.wait(20) == 0
        assert b"ping" in seen
        waited = subprocess.run([*cli, "wait", "echo"], env=env, check=True, capture_output=True, text=True, timeout=30)
        assert waited.stdout.strip() == "0"
        ps = subprocess.run([*cli, "ps", "-a"], env=env, check=True, capture_output=True, text=True).stdout
        assert "Exited (0)" in ps
        logs = subprocess.run([*cli, "logs", "echo"], env=env, check=True, capture_output=True).stdout
        assert b"isobox firmware boot ok" in logs
    finally:
        subprocess.run([*cli, "rm", "-f", "echo"], env=env, capture_output=True)


@pytest.mark.skipif(shutil.which("genisoimage") is None, reason="genisoimage not installed")
def test_boot_from_cdrom_before_the_disk(ctx: Context, tmp_path: Path) -> None:
    """An El Torito no-emulation CD (the boot sector as its boot image) boots before a blank disk."""
    driver = VMDriver(ctx.paths)
    content = tmp_path / "cd"
    content.mkdir()
    boot_disk(content / "boot.img")
    (content / "boot.img").write_bytes((content / "boot.img").read_bytes()[:2048])
    iso = tmp_path / "boot.iso"
    subprocess.run(
        [
            "genisoimage",
            "-quiet",
            "-o",
            str(iso),
            "-b",
            "boot.img",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            str(content),
        ],
        check=True,
    )
    blank = tmp_path / "blank.raw"
    blank.write_bytes(bytes(1024 * 1024))
    record = make(ctx, driver, blank, cdrom=iso)
    try:
        driver.start(record)
        assert driver.wait(record, 60).exit_code == 0
        assert b"isobox firmware boot ok\r" in [e.content for e in read_entries(Path(record.plan.log_path))]
    finally:
        driver.delete(record)


@pytest.mark.skipif(shutil.which("mkfs.vfat") is None or shutil.which("mcopy") is None, reason="dosfstools/mtools")
def test_uefi_firmware_boot_and_memory_snapshot(ctx: Context, tmp_path: Path) -> None:
    """--firmware uefi: OVMF boots a disk with no BIOS boot code at all (a FAT file system whose
    startup.nsh the UEFI shell runs), with its own variable store, which memory snapshots can include."""
    disk = tmp_path / "esp.raw"
    subprocess.run(["truncate", "-s", "34M", str(disk)], check=True)
    subprocess.run(["mkfs.vfat", "-n", "ISOBOX", str(disk)], check=True, capture_output=True)
    script = tmp_path / "startup.nsh"
    script.write_bytes(b"echo isobox uefi boot ok\r\nstall 3000000\r\nreset -s\r\n")
    subprocess.run(["mcopy", "-i", str(disk), str(script), "::/startup.nsh"], check=True)
    with pytest.raises(InvalidArgumentError, match="unknown firmware"):
        vms.create_disk_vm(ctx, disk, firmware="coreboot")
    driver = VMDriver(ctx.paths)
    record = vms.create_disk_vm(ctx, disk, firmware="uefi")
    try:
        assert record.driver_info["firmware"].startswith("OVMF")
        variables = anyos.efi_vars_path(driver.files(record))
        argv = " ".join(driver.argv(record))
        assert f"if=pflash,format=qcow2,unit=1,file={variables}" in argv and "readonly=on" in argv
        driver.start(record)
        deadline = time.monotonic() + 60
        while b"isobox uefi boot ok" not in b"".join(e.content for e in read_entries(Path(record.plan.log_path))):
            assert time.monotonic() < deadline, "the UEFI shell did not run startup.nsh"
            driver.observe(record)
            time.sleep(0.3)
        from isobox.drivers.vm import snapshots as vm_snapshots

        vm_snapshots.create(driver, record, "booted")  # every writable drive, the variables too, holds it
        observation = driver.wait(record, 60)
        assert (observation.status, observation.exit_code) == (Status.EXITED, 0)  # `reset -s`: powered off
    finally:
        driver.delete(record)
    assert not variables.exists()
