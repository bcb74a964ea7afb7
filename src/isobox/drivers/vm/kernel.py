"""The guest kernel and the modules the initramfs must load before it can reach the root disk.

Debian's cloud kernel builds virtio as modules (CONFIG_VIRTIO_PCI=m, CONFIG_VIRTIO_BLK=m,
CONFIG_VIRTIO_CONSOLE=m, CONFIG_FW_CFG_SYSFS=m) but ext4 in (CONFIG_EXT4_FS=y), so the initramfs
carries exactly these modules. The .deb ships no modules.dep (depmod makes it at install time) and
the host may lack kmod, so dependencies are read from each module's own ELF ``.modinfo`` section
(the ``depends=`` entry that modpost writes), which is what depmod itself reads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from isobox.errors import HostError

# What the guest needs: the PCI transport, the disk, the serial ports, fw_cfg (the run script), the
# network (virtio_net, for the TAPs of isobox networks), and the balloon, whose free page reporting
# hands memory the guest no longer uses back to the host.
WANTED_MODULES = ("virtio_pci", "virtio_blk", "virtio_console", "qemu_fw_cfg", "virtio_net", "virtio_balloon")
# Loaded by the guest only when a VM needs them (each group is a file /etc/isobox/modules-GROUP):
# most VMs share no directory, and every insmod costs boot time under TCG.
OPTIONAL_MODULES = {"virtiofs": ("virtiofs",)}


@dataclass(frozen=True)
class Kernel:
    vmlinuz: Path
    modules_dir: Path
    version: str

    def config_value(self, option: str) -> str | None:
        """'y', 'm', a value, or None when the option is unset (from the config beside vmlinuz)."""
        config = self.vmlinuz.with_name("config")
        try:
            lines = config.read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            key, sep, value = line.partition("=")
            if sep and key == option:
                return value
        return None


def find(kernel_dir: Path) -> Kernel:
    current = kernel_dir / "current"
    vmlinuz = current / "vmlinuz"
    if not vmlinuz.is_file():
        raise HostError(
            f"no guest kernel at {vmlinuz}: run scripts/setup (fetches linux-image-cloud-amd64)",
            op="find guest kernel",
            path=str(vmlinuz),
        )
    return Kernel(vmlinuz=vmlinuz, modules_dir=current / "modules", version=current.resolve().name)


def modinfo(path: Path) -> dict[str, list[str]]:
    """The key=value strings of an ELF64 module's .modinfo section."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise HostError(
            "not an ELF64 kernel module (compressed modules are not supported)", op="read module info", path=str(path)
        )
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_off = sections[shstrndx][4]
    info: dict[str, list[str]] = {}
    for name_off, _type, _flags, _addr, offset, size in sections:
        end = data.index(b"\0", names_off + name_off)
        if data[names_off + name_off : end] != b".modinfo":
            continue
        for item in data[offset : offset + size].split(b"\0"):
            key, sep, value = item.decode(errors="replace").partition("=")
            if sep:
                info.setdefault(key, []).append(value)
    return info


def _module_index(modules_dir: Path) -> dict[str, Path]:
    # Module names use '_' where file names may use '-' (virtio-rng.ko is module virtio_rng).
    return {p.name[:-3].replace("-", "_"): p for p in (modules_dir / "kernel").rglob("*.ko")}


def load_order(kernel: Kernel, wanted: tuple[str, ...] = WANTED_MODULES, loaded: tuple[Path, ...] = ()) -> list[Path]:
    """The module files to insmod, each after its dependencies; built-in modules and those already
    ``loaded`` are skipped."""
    index = _module_index(kernel.modules_dir)
    builtin = _builtin_names(kernel.modules_dir)
    order: list[Path] = []
    seen: set[str] = {p.name[:-3].replace("-", "_") for p in loaded}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in seen or name in builtin:
            return
        path = index.get(name)
        if path is None:
            raise HostError(
                f"kernel module {name} (needed by {' <- '.join(chain) or 'isobox'}) not found",
                op="resolve guest modules",
                path=str(kernel.modules_dir),
            )
        seen.add(name)
        for dep in modinfo(path).get("depends", [""])[0].split(","):
            if dep:
                visit(dep.replace("-", "_"), (*chain, name))
        order.append(path)

    for name in wanted:
        visit(name, ())
    return order


def _builtin_names(modules_dir: Path) -> set[str]:
    try:
        lines = (modules_dir / "modules.builtin").read_text().splitlines()
    except OSError:
        return set()
    return {Path(line).name.removesuffix(".ko").replace("-", "_") for line in lines if line}
