"""Golden test of the QEMU command line: a change here is a deliberate change of the VM's hardware."""

from __future__ import annotations

from pathlib import Path

import pytest

from isobox.drivers.vm.accel import Accel
from isobox.drivers.vm.qemu_args import BootFiles, VMFiles, build, memory_mib, vcpus

W = "/w/abc"
FILES = VMFiles(Path(W), Path("/run/isobox/vm/abc"))
BOOT = BootFiles(Path("/k/vmlinuz"), Path("/c/initramfs.cpio"))

GOLDEN = [
    "qemu-system-x86_64",
    "-name",
    "isobox-abc,process=isobox-abc",
    "-machine",
    "pc",
    "-accel",
    "tcg,tb-size=32",
    "-cpu",
    "max",
    "-smp",
    "2",
    "-m",
    "512",
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-rtc",
    "base=utc",
    "-qmp",
    "unix:/run/isobox/vm/abc/qmp.sock,server=on,wait=off",
    "-daemonize",
    "-pidfile",
    f"{W}/qemu.pid",
    "-no-reboot",
    "-kernel",
    "/k/vmlinuz",
    "-initrd",
    "/c/initramfs.cpio",
    "-append",
    "console=ttyS0 quiet loglevel=4 panic=-1 reboot=t i8042.noaux i8042.nokbd i8042.nopnp "
    "random.trust_cpu=on tsc=reliable rdinit=/init",
    "-serial",
    f"file:{W}/console.log",
    "-drive",
    f"file={W}/disk.qcow2,if=none,id=root,format=qcow2,cache=writeback,discard=unmap",
    "-device",
    "virtio-blk-pci,drive=root",
    "-device",
    "virtio-serial-pci,id=ports",
    "-device",
    "virtio-balloon-pci,free-page-reporting=on",
    "-chardev",
    f"file,id=port0,path={W}/stdout.raw,append=on",
    "-device",
    "virtserialport,bus=ports.0,chardev=port0,name=isobox.stdout",
    "-chardev",
    f"file,id=port1,path={W}/stderr.raw,append=on",
    "-device",
    "virtserialport,bus=ports.0,chardev=port1,name=isobox.stderr",
    "-chardev",
    f"file,id=port2,path={W}/status.raw,append=on",
    "-device",
    "virtserialport,bus=ports.0,chardev=port2,name=isobox.status",
    "-chardev",
    f"pipe,id=port3,path={W}/agent",
    "-device",
    "virtserialport,bus=ports.0,chardev=port3,name=isobox.agent",
    "-chardev",
    f"pipe,id=port4,path={W}/ctl",
    "-device",
    "virtserialport,bus=ports.0,chardev=port4,name=isobox.ctl",
    "-chardev",
    "socket,id=port5,path=/run/isobox/vm/abc/stdin.sock,server=on,wait=off",
    "-device",
    "virtserialport,bus=ports.0,chardev=port5,name=isobox.stdin",
    "-fw_cfg",
    f"name=opt/isobox/run,file={W}/run.sh",
]


def test_golden_tcg() -> None:
    args = build(id="abc", accel=Accel("tcg", "test"), memory_bytes=512 * 1024 * 1024, cpus=2, files=FILES, boot=BOOT)
    assert args == GOLDEN


def test_kvm_uses_host_cpu_and_loadvm_is_appended() -> None:
    args = build(
        id="abc", accel=Accel("kvm", "test"), memory_bytes=None, cpus=None, files=FILES, boot=BOOT, loadvm="snap1"
    )
    assert args[args.index("-cpu") + 1] == "host"
    assert args[args.index("-accel") + 1] == "kvm"
    assert args[-2:] == ["-loadvm", "snap1"]


def test_resources() -> None:
    assert memory_mib(None) == 256
    assert memory_mib(1024) == 64
    assert vcpus(None) == 1
    assert vcpus(1.5) == 2
    assert VMFiles.of("/w/x", "f" * 64, Path("/run/isobox")).qmp == Path("/run/isobox/vm/" + "f" * 32 + "/qmp.sock")


def test_network_taps_and_isolated_nics() -> None:
    from tests.unit.vm_fixtures import ETH0 as eth0

    from isobox.drivers.vm.qemu_args import network

    assert network((eth0,)) == [
        "-netdev",
        "tap,id=net0,ifname=itap-abc,script=no,downscript=no",
        "-device",
        "virtio-net-pci,netdev=net0,mac=02:42:0a:58:00:02",
    ]
    assert network((), ("02:42:0a:58:00:02",)) == [
        "-netdev",
        "tap,id=net0,script=no,downscript=no,vnet_hdr=on",
        "-device",
        "virtio-net-pci,netdev=net0,mac=02:42:0a:58:00:02",
    ]


def test_terminal_is_a_virtio_console_logged_as_stdout() -> None:
    args = build(id="abc", accel=Accel("tcg", "test"), memory_bytes=None, cpus=None, files=FILES, boot=BOOT, tty=True)
    index = args.index("virtconsole,bus=ports.0,chardev=tty,name=isobox.tty")
    assert args[index - 2 : index] == [
        "socket,id=tty,path=/run/isobox/vm/abc/tty.sock,server=on,wait=off,logfile=/w/abc/stdout.raw,logappend=on",
        "-device",
    ]


@pytest.mark.parametrize("tty", [False, True])
def test_exec_console_follows_the_workload_terminal(tty: bool) -> None:
    """The guest counts virtio consoles in this order: the exec console is hvc1 with -t, hvc0 without."""
    args = build(id="abc", accel=Accel("tcg", "test"), memory_bytes=None, cpus=None, files=FILES, boot=BOOT, tty=tty,
                 exec_tty=True)
    consoles = [a for a in args if a.startswith("virtconsole,")]
    names = [c.rsplit("name=", 1)[1] for c in consoles]
    assert names == (["isobox.tty", "isobox.exectty"] if tty else ["isobox.exectty"])
    assert "socket,id=exectty,path=/run/isobox/vm/abc/exec-tty.sock,server=on,wait=off" in args
    assert "virtserialport,bus=ports.0,chardev=execinput,name=isobox.input" in args
    plain = build(id="abc", accel=Accel("tcg", "test"), memory_bytes=None, cpus=None, files=FILES, boot=BOOT, tty=tty)
    assert not any("exectty" in a for a in plain), "VMs made before the exec console keep their devices"
