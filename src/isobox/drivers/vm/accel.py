"""Which accelerator QEMU gets: KVM when the host really has hardware virtualisation, else TCG.

/dev/kvm alone proves nothing: on some cloud hosts it is a paravirtual device (PVM, module kvm_pvm)
under which a standard guest kernel hangs during boot. Real KVM means the vendor module is loaded
(kvm_intel or kvm_amd in /sys/module) and the CPU advertises vmx or svm in /proc/cpuinfo.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

KVM_VENDOR_MODULES = ("kvm_intel", "kvm_amd")
CPU_FLAGS = ("vmx", "svm")


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" | "tcg"
    reason: str

    @property
    def is_kvm(self) -> bool:
        return self.name == "kvm"


def _cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def decide(*, kvm_device: bool, modules: set[str], cpuinfo: str) -> Accel:
    """Pure decision from host facts (unit-tested without a host)."""
    if not kvm_device:
        return Accel("tcg", "no /dev/kvm")
    vendor = sorted(m for m in KVM_VENDOR_MODULES if m in modules)
    if not vendor:
        other = sorted(m for m in modules if m.startswith("kvm_"))
        what = f"only {', '.join(other)} is loaded" if other else "no kvm_intel/kvm_amd module is loaded"
        return Accel("tcg", f"/dev/kvm exists but {what} (not hardware KVM)")
    flags = _cpu_flags(cpuinfo) & set(CPU_FLAGS)
    if not flags:
        return Accel("tcg", f"{vendor[0]} is loaded but the CPU lacks vmx/svm")
    return Accel("kvm", f"/dev/kvm with {vendor[0]} and CPU flag {sorted(flags)[0]}")


@functools.cache
def detect(sys_module: Path = Path("/sys/module"), cpuinfo: Path = Path("/proc/cpuinfo")) -> Accel:
    """KVM or TCG for this host, with the reason (shown by `isobox info` and `inspect`)."""
    forced = os.environ.get("ISOBOX_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return Accel(forced, "forced by ISOBOX_VM_ACCEL")
    try:
        modules = {entry.name for entry in sys_module.iterdir() if entry.name.startswith("kvm")}
    except OSError:
        modules = set()
    try:
        text = cpuinfo.read_text()
    except OSError:
        text = ""
    return decide(kvm_device=os.path.exists("/dev/kvm"), modules=modules, cpuinfo=text)
