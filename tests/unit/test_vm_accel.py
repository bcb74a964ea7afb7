from __future__ import annotations

from isobox.drivers.vm.accel import Accel, decide

CPUINFO_VMX = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\n"
CPUINFO_PLAIN = "processor\t: 0\nflags\t\t: fpu vme de pse sse2\n"


def test_no_device_means_tcg() -> None:
    chosen = decide(kvm_device=False, modules={"kvm_intel"}, cpuinfo=CPUINFO_VMX)
    assert chosen == Accel("tcg", "no /dev/kvm")


def test_pvm_device_is_not_kvm() -> None:
    chosen = decide(kvm_device=True, modules={"kvm", "kvm_pvm"}, cpuinfo=CPUINFO_PLAIN)
    assert chosen.name == "tcg"
    assert "kvm_pvm" in chosen.reason


def test_vendor_module_without_cpu_flag_is_tcg() -> None:
    assert decide(kvm_device=True, modules={"kvm", "kvm_amd"}, cpuinfo=CPUINFO_PLAIN).name == "tcg"


def test_real_kvm() -> None:
    chosen = decide(kvm_device=True, modules={"kvm", "kvm_intel"}, cpuinfo=CPUINFO_VMX)
    assert chosen.is_kvm
    assert "kvm_intel" in chosen.reason and "vmx" in chosen.reason
