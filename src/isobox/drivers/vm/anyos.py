"""Any-OS VMs: a user's disk image (qcow2 or raw), optionally a CD-ROM and a cloud-init seed, booted
through firmware with the serial console on a socket: SeaBIOS (QEMU's default for the pc machine), or
with ``firmware="uefi"`` OVMF (EDK II for QEMU, Debian package ovmf) as two pflash devices, its code
read-only and a copy of its variable store per VM. That copy is qcow2, not raw as OVMF ships it: savevm
needs every writable drive to hold snapshots, and pflash accepts any format of the right size.

Such a VM is a workload like the others (same records, lifecycle and log), told apart by the
``disk_boot`` of its plan. Its disk is never written: the VM runs on a qcow2 overlay in its
workload directory, like image VMs. The serial console is a unix socket chardev that `isobox console`
attaches to; its ``logfile`` (docs/system/invocation, -chardev logfile=) is the stdout stream of the
workload log, so the console output is kept with no client attached. There is no agent in such a
guest: exec is not available, and stop asks the guest to power off through ACPI (QMP
system_powerdown) before it quits QEMU.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from isobox.drivers.vm.accel import Accel
from isobox.drivers.vm.qemu_args import VMFiles, base
from isobox.errors import HostError, InvalidArgumentError
from isobox.model.plan import DiskBoot, Firmware, Process, RunPlan
from isobox.model.spec import Kind, Resources

OVMF_DIR = Path("/usr/share/OVMF")
# (code, variable store template) in the order tried: the 4 MiB build first, as current distributions use.
OVMF_BUILDS = (("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"), ("OVMF_CODE.fd", "OVMF_VARS.fd"))


def plan(
    *,
    id: str,
    name: str,
    disk: Path,
    workload_dir: str,
    cdrom: Path | None = None,
    cloud_init: Path | None = None,
    resources: Resources | None = None,
    firmware: str = "bios",
) -> RunPlan:
    """A RunPlan for a disk-image VM (no image, no layers: the disk is the whole machine)."""
    try:
        chosen = Firmware(firmware)
    except ValueError:
        choices = ", ".join(f.value for f in Firmware)
        raise InvalidArgumentError(f"unknown firmware {firmware!r} (use {choices})", op="create VM", id=name) from None
    for path, what in ((disk, "disk"), (cdrom, "CD-ROM image"), (cloud_init, "cloud-init user-data")):
        if path is not None and not path.is_file():
            raise InvalidArgumentError(f"{what} {path} does not exist", op="create VM", path=str(path))
    boot = DiskBoot(
        disk=str(disk.absolute()),
        cdrom=str(cdrom.absolute()) if cdrom is not None else None,
        cloud_init=str(cloud_init.absolute()) if cloud_init is not None else None,
        firmware=chosen,
    )
    return RunPlan(
        id=id,
        name=name,
        kind=Kind.VM,
        image=f"disk:{disk.name}",
        image_id="",
        process=Process(argv=("(firmware boot)",), env=()),
        hostname=name,
        layers=(),
        workload_dir=workload_dir,
        resources=resources or Resources(),
        stop_timeout_s=60.0,
        disk_boot=boot,
    )


def disk_format(disk: Path) -> str:
    try:
        result = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(disk)], capture_output=True,
                                text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise HostError("qemu-img info did not finish within 60 s", op="inspect disk image", path=str(disk)) from exc
    if result.returncode != 0:
        raise InvalidArgumentError(f"not a disk image: {result.stderr.strip()}", op="create VM", path=str(disk))
    fmt = str(json.loads(result.stdout).get("format", ""))
    if fmt not in ("qcow2", "raw"):
        raise InvalidArgumentError(
            f"disk format {fmt!r} is not supported (use qcow2 or raw)", op="create VM", path=str(disk)
        )
    return fmt


def ovmf() -> tuple[Path, Path]:
    """(code, variable store template) of the installed OVMF."""
    for code, variables in OVMF_BUILDS:
        if (OVMF_DIR / code).is_file() and (OVMF_DIR / variables).is_file():
            return OVMF_DIR / code, OVMF_DIR / variables
    raise HostError(f"OVMF is not installed (no {OVMF_BUILDS[0][0]} in {OVMF_DIR}; Debian package ovmf)",
                    op="create VM")


def efi_vars_path(files: VMFiles) -> Path:
    return files.root / "efivars.qcow2"


def seed_path(files: VMFiles) -> Path:
    return files.root / "seed.iso"


def make_seed(user_data: Path, instance_id: str, hostname: str, target: Path) -> None:
    """A cloud-init NoCloud seed: an ISO 9660 volume labelled "cidata" holding user-data and meta-data,
    made the way cloud-init's docs do it (genisoimage -volid cidata -joliet -rock)."""
    if shutil.which("genisoimage") is None:
        raise HostError("genisoimage is not installed (needed for --cloud-init)", op="make cloud-init seed")
    with tempfile.TemporaryDirectory(prefix="isobox-seed-") as work:
        shutil.copyfile(user_data, Path(work) / "user-data")
        (Path(work) / "meta-data").write_text(f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n")
        result = subprocess.run(
            [
                "genisoimage",
                "-quiet",
                "-output",
                str(target),
                "-volid",
                "cidata",
                "-joliet",
                "-rock",
                "user-data",
                "meta-data",
            ],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=60,  # a few kB: a genisoimage that does not end is stuck, not slow
        )
    if result.returncode != 0:
        raise HostError(f"genisoimage failed: {result.stderr.strip()}", op="make cloud-init seed", path=str(target))


def console_socket(files: VMFiles) -> Path:
    return files.sockets / "console.sock"


def build(*, id: str, accel: Accel, plan: RunPlan, files: VMFiles, loadvm: str | None = None) -> list[str]:
    """QEMU argv of a disk-image VM: firmware boot from the CD-ROM (if any) once, then the disk."""
    boot = plan.disk_boot
    assert boot is not None
    args = base(name=id, accel=accel, memory_bytes=plan.resources.memory_bytes, cpus=plan.resources.cpus, files=files)
    if boot.firmware is Firmware.UEFI:
        code, _ = ovmf()
        args += [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=qcow2,unit=1,file={efi_vars_path(files)}",
        ]  # fmt: skip
    args += [
        "-drive",
        f"file={files.disk},if=none,id=root,format=qcow2,cache=writeback,discard=unmap",
        "-device",
        "virtio-blk-pci,drive=root,bootindex=1",
        "-chardev",
        f"socket,id=console,path={console_socket(files)},server=on,wait=off,"
        f"logfile={files.port('stdout')},logappend=on",
        "-serial",
        "chardev:console",
    ]
    cdrom = boot.cdrom
    if cdrom:
        args += [
            "-drive",
            f"file={cdrom},if=none,id=cd0,media=cdrom,readonly=on",
            "-device",
            "ide-cd,drive=cd0,bootindex=0",
        ]
    if boot.cloud_init:
        args += [
            "-drive",
            f"file={seed_path(files)},if=none,id=seed,media=cdrom,readonly=on",
            "-device",
            "ide-cd,drive=seed",
        ]
    if loadvm:
        args += ["-loadvm", loadvm]
    return args
