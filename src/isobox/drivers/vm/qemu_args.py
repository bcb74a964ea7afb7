"""RunPlan → QEMU argv, as data (pure; golden-tested in tests/unit/test_vm_qemu_args.py).

Choices, with the QEMU documentation they rest on (docs/system/invocation.rst unless noted):
- Machine ``pc`` with virtio-pci, not ``microvm``: under TCG microvm hung at TSC calibration in about
  one boot of four on this class of host; q35 and pc did not. Measured here under TCG (busybox `true`,
  boot to power-off): pc 3.78 s, q35 3.83 s, equal within noise; pc has fewer devices to set up.
- ``-nodefaults -no-user-config``: no default NIC, VGA, floppy, CD-ROM or user config file. The usual
  ``-nographic`` is not possible: QEMU refuses ``-nographic`` together with ``-daemonize`` ("-nographic
  cannot be used with -daemonize"), so ``-display none`` and an explicit ``-serial`` replace it.
- ``-daemonize -pidfile``: QEMU outlives the isobox process that started it; the pid file is written
  once the VM is set up, before the parent returns.
- ``-no-reboot`` + kernel ``panic=-1``: a guest panic or reboot ends QEMU instead of looping.
- Guest stdout, stderr and exit status are virtio-serial ports backed by ``file`` chardevs
  (docs/system/invocation, -chardev file,append=on): QEMU itself writes them, so the workload's
  output is complete with no isobox process alive; append=on so a restart or a snapshot restore does
  not truncate them. The agent ports are ``pipe`` chardevs (FIFOs NAME.in/NAME.out), which always
  count as connected, so the guest's reads block instead of returning EOF while no host reader is
  attached (a socket chardev without a client reads as EOF, drivers/char/virtio_console.c).
- The run script reaches the guest as fw_cfg file opt/isobox/run (docs/specs/fw_cfg.rst).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from isobox.drivers.vm.accel import Accel

QEMU_BINARY = "qemu-system-x86_64"
DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024
DEFAULT_CPUS = 1
MACHINE = "pc"
# quiet boot, serial console, no PS/2 probing (no i8042 devices matter to a workload), and no
# reboot loop on panic.
KERNEL_CMDLINE = (
    "console=ttyS0 quiet loglevel=4 panic=-1 reboot=t i8042.noaux i8042.nokbd i8042.nopnp "
    "random.trust_cpu=on tsc=reliable rdinit=/init"
)
PORTS = ("stdout", "stderr", "status")   # file-backed
PIPES = ("agent", "ctl")                 # FIFO-backed


@dataclass(frozen=True)
class VMFiles:
    """Where one VM keeps its state: files under its workload directory, the QMP socket in a runtime
    directory of its own (a unix socket path must fit in 108 bytes, sun_path in unix(7), which a
    workload directory under a relocated root does not)."""

    root: Path
    sockets: Path

    @classmethod
    def of(cls, workload_dir: str, workload_id: str, run_root: Path) -> VMFiles:
        return cls(Path(workload_dir), run_root / "vm" / workload_id[:32])

    @property
    def disk(self) -> Path:
        return self.root / "disk.qcow2"

    @property
    def qmp(self) -> Path:
        return self.sockets / "qmp.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "qemu.pid"

    @property
    def console(self) -> Path:
        return self.root / "console.log"

    @property
    def run_script(self) -> Path:
        return self.root / "run.sh"

    @property
    def killed(self) -> Path:
        return self.root / "killed"

    def port(self, name: str) -> Path:
        return self.root / f"{name}.raw"

    def pipe(self, name: str) -> Path:
        return self.root / name


@dataclass(frozen=True)
class BootFiles:
    kernel: Path
    initramfs: Path


def memory_mib(memory_bytes: int | None) -> int:
    return max(64, (memory_bytes or DEFAULT_MEMORY_BYTES) // (1024 * 1024))


def vcpus(cpus: float | None) -> int:
    # QEMU takes whole vCPUs; a fractional --cpus rounds up (the quota itself is a cgroup matter).
    return max(DEFAULT_CPUS, int(-(-(cpus or DEFAULT_CPUS) // 1)))


def base(*, name: str, accel: Accel, memory_bytes: int | None, cpus: float | None, files: VMFiles,
         machine: str = MACHINE) -> list[str]:
    """The part shared by image VMs and any-OS VMs: machine, CPU, memory, monitor, daemon."""
    return [
        QEMU_BINARY,
        "-name", f"isobox-{name},process=isobox-{name[:12]}",
        "-machine", f"{machine},accel={accel.name}",
        "-cpu", "host" if accel.is_kvm else "max",
        "-smp", str(vcpus(cpus)),
        "-m", str(memory_mib(memory_bytes)),
        "-nodefaults", "-no-user-config", "-display", "none",
        "-rtc", "base=utc",
        "-qmp", f"unix:{files.qmp},server=on,wait=off",
        "-daemonize", "-pidfile", str(files.pidfile),
    ]


def build(*, id: str, accel: Accel, memory_bytes: int | None, cpus: float | None, files: VMFiles,
          boot: BootFiles, loadvm: str | None = None) -> list[str]:
    """The full argv of an image VM (direct kernel boot of the isobox initramfs)."""
    args = base(name=id, accel=accel, memory_bytes=memory_bytes, cpus=cpus, files=files)
    args += [
        "-no-reboot",
        "-kernel", str(boot.kernel),
        "-initrd", str(boot.initramfs),
        "-append", KERNEL_CMDLINE,
        "-serial", f"file:{files.console}",
        "-drive", f"file={files.disk},if=none,id=root,format=qcow2,cache=writeback,discard=unmap",
        "-device", "virtio-blk-pci,drive=root",
        "-device", "virtio-serial-pci,id=ports",
    ]
    for index, name in enumerate(PORTS):
        args += ["-chardev", f"file,id=port{index},path={files.port(name)},append=on"]
        args += ["-device", f"virtserialport,bus=ports.0,chardev=port{index},name=isobox.{name}"]
    for index, name in enumerate(PIPES, start=len(PORTS)):
        args += ["-chardev", f"pipe,id=port{index},path={files.pipe(name)}"]
        args += ["-device", f"virtserialport,bus=ports.0,chardev=port{index},name=isobox.{name}"]
    args += ["-fw_cfg", f"name=opt/isobox/run,file={files.run_script}"]
    if loadvm:
        args += ["-loadvm", loadvm]
    return args
