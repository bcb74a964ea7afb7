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
- stdin (-i) is a ``socket`` chardev: end-of-input reaches the guest as the client going away. With
  -t the workload's terminal is a ``virtconsole`` port (see ``terminal``).
- The run script reaches the guest as fw_cfg file opt/isobox/run (docs/specs/fw_cfg.rst).
- Networks: one virtio-net NIC per TAP that the network service made (see ``network``); the balloon
  with free-page-reporting returns memory the guest freed to the host (docs/interop/virtio-balloon-stats
  and the virtio spec, "Free Page Reporting").
- The TCG translation cache is capped (``TCG_TB_SIZE_MIB``) to keep an idle VM's host memory down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from isobox.drivers.vm import volumes as vm_volumes
from isobox.drivers.vm.accel import Accel
from isobox.model.network import InterfacePlan

QEMU_BINARY = "qemu-system-x86_64"
DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024
DEFAULT_CPUS = 1
MACHINE = "pc"
# Quiet boot with the kernel log on the serial console (console.log, for debugging), no PS/2 probing
# (no i8042 device matters to a workload), and no reboot loop on panic.
KERNEL_CMDLINE = (
    "console=ttyS0 quiet loglevel=4 panic=-1 reboot=t i8042.noaux i8042.nokbd i8042.nopnp "
    "random.trust_cpu=on tsc=reliable rdinit=/init"
)
# TCG's translation cache defaults to 1 GiB (docs/system/invocation, -accel tb-size); a VM that
# mostly idles after boot touches ~50 MiB of it. 32 MiB cut an idle VM's PSS from 202 to 182 MiB here,
# with boot times (2.5-2.7 s) within the noise of the default's.
TCG_TB_SIZE_MIB = 32
PORTS = ("stdout", "stderr", "status")  # file-backed
PIPES = ("agent", "ctl")  # FIFO-backed


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
    def stdin(self) -> Path:
        return self.sockets / "stdin.sock"

    @property
    def tty(self) -> Path:
        return self.sockets / "tty.sock"

    @property
    def exec_tty(self) -> Path:
        return self.sockets / "exec-tty.sock"

    @property
    def exec_input(self) -> Path:
        return self.sockets / "exec-input.sock"

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
    def started(self) -> Path:
        """Exists once the VM was started at least once (created → exited, never back to created)."""
        return self.root / "started"

    @property
    def start_offsets(self) -> Path:
        """Sizes of the output files when the VM last started: where a later attach begins."""
        return self.root / "start.offsets"

    @property
    def paused(self) -> Path:
        """Exists while the VM is paused (QMP stop): QEMU runs on, its vCPUs do not."""
        return self.root / "paused"

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


def terminal(files: VMFiles) -> list[str]:
    """For -t: a virtio console port, which the guest sees as a real terminal (/dev/hvc0, with line
    discipline, echo and job control), on a socket that attach connects to. The chardev's logfile
    keeps what the terminal shows in the stdout stream even when nobody is attached
    (docs/system/invocation, -chardev socket,logfile=)."""
    chardev = f"socket,id=tty,path={files.tty},server=on,wait=off,logfile={files.port('stdout')},logappend=on"
    return ["-chardev", chardev, "-device", "virtconsole,bus=ports.0,chardev=tty,name=isobox.tty"]


def exec_devices(files: VMFiles) -> list[str]:
    """For exec with a stream: the exec console, another virtio console for `exec -t` sessions
    (drivers/vm/exec_tty.py), added after the workload's terminal, so the guest knows it as hvc1 with -t
    and hvc0 without; and the exec input port for `exec -i` (a socket chardev, so the end of the host's
    input reaches the guest as end-of-file, as the workload's stdin does)."""
    return [
        "-chardev", f"socket,id=exectty,path={files.exec_tty},server=on,wait=off",
        "-device", "virtconsole,bus=ports.0,chardev=exectty,name=isobox.exectty",
        "-chardev", f"socket,id=execinput,path={files.exec_input},server=on,wait=off",
        "-device", "virtserialport,bus=ports.0,chardev=execinput,name=isobox.input",
    ]  # fmt: skip


def network(interfaces: tuple[InterfacePlan, ...], isolated_macs: tuple[str, ...] = ()) -> list[str]:
    """One virtio-net NIC per isobox network, on the TAP the network service made (ifname= opens the
    existing persistent TAP; script=no: isobox already put it on the bridge).

    ``isolated_macs``: NICs on a TAP of their own that QEMU creates without a name and that is on no
    bridge (it vanishes with QEMU). A clone started from a memory snapshot needs the devices the
    snapshot was taken with, including a backend with vnet headers (the user-mode backend fails:
    "saved image requires vnet_hdr=on"), but its guest still holds the source's addresses, which
    must not appear on the bridge.
    """
    backends = [f"tap,ifname={i.host_ifname},script=no,downscript=no" for i in interfaces]
    backends += ["tap,script=no,downscript=no,vnet_hdr=on" for _ in isolated_macs]
    macs = [i.mac for i in interfaces] + list(isolated_macs)
    args: list[str] = []
    for index, (backend, mac) in enumerate(zip(backends, macs, strict=True)):
        kind, _, options = backend.partition(",")
        args += ["-netdev", f"{kind},id=net{index},{options}"]
        args += ["-device", f"virtio-net-pci,netdev=net{index},mac={mac}"]
    return args


def memory_mib(memory_bytes: int | None) -> int:
    return max(64, (memory_bytes or DEFAULT_MEMORY_BYTES) // (1024 * 1024))


def vcpus(cpus: float | None) -> int:
    # QEMU takes whole vCPUs; a fractional --cpus rounds up (the quota itself is a cgroup matter).
    return max(DEFAULT_CPUS, int(-(-(cpus or DEFAULT_CPUS) // 1)))


def base(
    *, name: str, accel: Accel, memory_bytes: int | None, cpus: float | None, files: VMFiles, machine: str = MACHINE
) -> list[str]:
    """The part shared by image VMs and any-OS VMs: machine, CPU, memory, monitor, daemon."""
    return [
        QEMU_BINARY,
        "-name",
        f"isobox-{name},process=isobox-{name[:12]}",
        "-machine",
        machine,
        "-accel",
        accel.name if accel.is_kvm else f"tcg,tb-size={TCG_TB_SIZE_MIB}",
        "-cpu",
        "host" if accel.is_kvm else "max",
        "-smp",
        str(vcpus(cpus)),
        "-m",
        str(memory_mib(memory_bytes)),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-rtc",
        "base=utc",
        "-qmp",
        f"unix:{files.qmp},server=on,wait=off",
        "-daemonize",
        "-pidfile",
        str(files.pidfile),
    ]


def build(
    *,
    id: str,
    accel: Accel,
    memory_bytes: int | None,
    cpus: float | None,
    files: VMFiles,
    boot: BootFiles,
    loadvm: str | None = None,
    interfaces: tuple[InterfacePlan, ...] = (),
    isolated_macs: tuple[str, ...] = (),
    tty: bool = False,
    mounts: vm_volumes.VMMounts | None = None,
    exec_tty: bool = False,
) -> list[str]:
    """The full argv of an image VM (direct kernel boot of the isobox initramfs). ``exec_tty``: VMs
    created before the exec devices existed keep their device list, so their memory snapshots load."""
    mounts = mounts or vm_volumes.VMMounts()
    machine = MACHINE
    if mounts.needs_shared_memory:
        machine = f"{MACHINE},memory-backend={vm_volumes.MEMORY_BACKEND_ID}"
    args = base(name=id, accel=accel, memory_bytes=memory_bytes, cpus=cpus, files=files, machine=machine)
    if mounts.needs_shared_memory:
        args += vm_volumes.memory_backend(memory_mib(memory_bytes))
    args += [
        "-no-reboot",
        "-kernel",
        str(boot.kernel),
        "-initrd",
        str(boot.initramfs),
        "-append",
        KERNEL_CMDLINE,
        "-serial",
        f"file:{files.console}",
        "-drive",
        f"file={files.disk},if=none,id=root,format=qcow2,cache=writeback,discard=unmap",
        "-device",
        "virtio-blk-pci,drive=root",
        "-device",
        "virtio-serial-pci,id=ports",
        "-device",
        "virtio-balloon-pci,free-page-reporting=on",
    ]
    for index, name in enumerate(PORTS):
        args += ["-chardev", f"file,id=port{index},path={files.port(name)},append=on"]
        args += ["-device", f"virtserialport,bus=ports.0,chardev=port{index},name=isobox.{name}"]
    for index, name in enumerate(PIPES, start=len(PORTS)):
        args += ["-chardev", f"pipe,id=port{index},path={files.pipe(name)}"]
        args += ["-device", f"virtserialport,bus=ports.0,chardev=port{index},name=isobox.{name}"]
    # stdin is a socket chardev, unlike the agent ports: closing the host's connection is how the
    # guest's reader sees end-of-file (host_connected, drivers/char/virtio_console.c).
    args += ["-chardev", f"socket,id=port{len(PORTS) + len(PIPES)},path={files.stdin},server=on,wait=off"]
    args += ["-device", f"virtserialport,bus=ports.0,chardev=port{len(PORTS) + len(PIPES)},name=isobox.stdin"]
    if tty:
        args += terminal(files)
    if exec_tty:
        args += exec_devices(files)
    args += ["-fw_cfg", f"name=opt/isobox/run,file={files.run_script}"]
    args += vm_volumes.qemu_args(mounts, files.sockets)
    args += network(interfaces, isolated_macs)
    if loadvm:
        args += ["-loadvm", loadvm]
    return args
