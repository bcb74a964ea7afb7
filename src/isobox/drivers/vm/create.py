"""Creating a VM: its overlay disk on the image's cached base disk (or a disk image's), its run script for the
guest init, the FIFOs of its agent ports; for a disk-image VM the cloud-init seed and the UEFI variable store.
Nothing runs yet; a failure leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from isobox.command import run
from isobox.config import Paths
from isobox.drivers.base import Created
from isobox.drivers.vm import accel as vm_accel
from isobox.drivers.vm import anyos, guest_script, initramfs, qemu_args, rootdisk
from isobox.drivers.vm import kernel as guest_kernel
from isobox.drivers.vm import volumes as vm_volumes
from isobox.drivers.vm.qemu_args import VMFiles
from isobox.errors import UnsupportedError
from isobox.linux.tree import discard_tree
from isobox.model.host_settings import hosts_with_extras, resolv_with
from isobox.model.network import hosts_file, resolv_conf
from isobox.model.plan import Firmware, RunPlan
from isobox.model.users import ResolvedUser, resolve_user


def image_user(plan: RunPlan, spec: str) -> ResolvedUser:
    """``spec`` resolved against the image's files, as for containers (model/users.py)."""
    return resolve_user(
        spec, rootdisk.image_file(plan.layers, "etc/passwd"), rootdisk.image_file(plan.layers, "etc/group")
    )


def create(paths: Paths, plan: RunPlan) -> Created:
    files = VMFiles.of(plan.workload_dir, plan.id, paths.run)
    existed = files.root.exists()
    files.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if plan.disk_boot is not None:
        return _create_disk_vm(plan, files, existed)
    refuse_container_only(plan)
    with contextlib.ExitStack() as undo:
        undo.callback(_undo_create, files, existed)
        kernel = guest_kernel.find(paths.kernel_dir)
        boot = initramfs.ensure(paths.cache, paths.locks, kernel)
        base = rootdisk.ensure_base(paths.cache, paths.locks, plan.image_id, plan.layers)
        rootdisk.create_overlay(base, files.disk)
        write_run_script(files, plan)
        for name in qemu_args.PIPES:
            for suffix in (".in", ".out"):
                os.mkfifo(f"{files.pipe(name)}{suffix}", 0o600)
        undo.pop_all()
    facts = {**_accel_facts(), "kernel": kernel.version, "initramfs": str(boot), "root_disk_base": str(base)}
    return Created(facts, exec_devices=True)


def _create_disk_vm(plan: RunPlan, files: VMFiles, existed: bool) -> Created:
    boot = plan.disk_boot
    assert boot is not None
    disk = Path(boot.disk)
    with contextlib.ExitStack() as undo:
        undo.callback(_undo_create, files, existed)
        fmt = anyos.disk_format(disk)
        rootdisk.create_overlay(disk, files.disk, fmt)
        if boot.cloud_init:
            anyos.make_seed(Path(boot.cloud_init), plan.id, plan.hostname, anyos.seed_path(files))
        firmware = "SeaBIOS"
        if boot.firmware is Firmware.UEFI:
            code, template = anyos.ovmf()
            target = str(anyos.efi_vars_path(files))
            run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(template), target],
                op="create VM", id=plan.id, path=target)
            firmware = f"OVMF ({code.name})"
        undo.pop_all()
    return Created({**_accel_facts(), "firmware": firmware, "disk": str(disk), "disk_format": fmt})


def write_run_script(files: VMFiles, plan: RunPlan) -> None:
    """The run script the guest init reads at each boot (also rewritten when a stopped VM's networks change)."""
    files.run_script.write_text(
        guest_script.run_script(
            hostname=plan.hostname,
            argv=plan.process.argv,
            env=plan.process.env,
            cwd=plan.process.cwd,
            user=image_user(plan, plan.process.user),
            interactive=plan.process.interactive,
            tty=plan.process.tty,
            network=_guest_network(plan),
            mounts=vm_volumes.guest_lines(vm_volumes.of(plan.mounts)),
            ulimits=plan.host.ulimits,
            sysctls=plan.host.sysctls,
            shm_size_bytes=plan.host.shm_size_bytes,
        )
    )


def refuse_container_only(plan: RunPlan) -> None:
    """Run flags that only a container can honour are refused (UnsupportedError) before anything is made."""
    resources = plan.resources
    reasons = {
        "--device": (plan.host.devices, "a VM's devices are the ones QEMU emulates, not the host's"),
        "--memory-swap": (resources.memory_swap_bytes, "a VM's memory is its guest's RAM (--memory); the guest "
                                                       "swaps on its own"),
        "--memory-reservation": (resources.memory_reservation_bytes, "a VM's memory is its guest's RAM (--memory)"),
        "--ulimit": (guest_script.unsupported_ulimits(plan.host.ulimits), "the guest's shell cannot set rttime"),
    }
    for flag, (given, why) in reasons.items():
        if given:
            raise UnsupportedError(f"{flag} is not available for VMs: {why}; run it as a container for this",
                                   op="create", id=plan.name)


def _guest_network(plan: RunPlan) -> guest_script.GuestNetwork:
    network = plan.network
    interfaces = network.interfaces if network is not None else ()
    try:
        host_resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        host_resolv = ""
    gateway = interfaces[0].gateway if interfaces else ""
    return guest_script.GuestNetwork(
        interfaces=interfaces,
        hosts=hosts_with_extras(hosts_file(network, plan.hostname), plan.host.extra_hosts, gateway),
        resolv_conf=resolv_with(resolv_conf(network, host_resolv), plan.host.dns),
    )


def _undo_create(files: VMFiles, existed: bool) -> None:
    """A failed create leaves nothing: the directory if create made it, else the files it made."""
    if not existed:
        discard_tree(files.root)
        return
    pipes = [Path(f"{files.pipe(name)}{suffix}") for name in qemu_args.PIPES for suffix in (".in", ".out")]
    for path in (files.disk, files.run_script, anyos.seed_path(files), *pipes):
        path.unlink(missing_ok=True)


def _accel_facts() -> dict[str, str]:
    """What `inspect` shows of how a VM runs: the accelerator, why it was chosen, the machine type."""
    chosen = vm_accel.detect()
    return {"accelerator": chosen.name, "accelerator_reason": chosen.reason, "machine": qemu_args.MACHINE}
