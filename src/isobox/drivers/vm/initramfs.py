"""The guest initramfs: busybox-static, the guest init and agent, and the virtio modules.

Built once per (busybox, guest scripts, kernel) and cached under Paths.cache/initramfs by content
hash; every VM boots the same file. The archive is an uncompressed cpio "newc" (the format the
kernel unpacks, Documentation/driver-api/early-userspace/buffer-format.rst): about 3 MiB, and not
compressing it saves the decompression time, which under TCG is noticeable.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from importlib import resources
from pathlib import Path

from isobox.drivers.vm import kernel as guest_kernel
from isobox.drivers.vm.guest_script import SETPRIV_DIR
from isobox.errors import HostError
from isobox.images.builtin import find_busybox
from isobox.state.locks import locked

_DIRS = (
    "bin", "dev", "etc", "etc/isobox", "lib", "lib/modules", "proc", "root", "run", "sys", "tmp", "usr", "usr/lib",
    SETPRIV_DIR.lstrip("/"),
)  # fmt: skip
SETPRIV = Path("/usr/bin/setpriv")  # util-linux: sets supplementary groups (see guest_script.SETPRIV_DIR)


def setpriv_files(binary: Path = SETPRIV) -> dict[str, Path]:
    """setpriv, its libraries and its dynamic loader (as ld.so), by name in SETPRIV_DIR, found with ldd."""
    try:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise HostError(f"cannot list the libraries of {binary} (util-linux): {exc}", op="build initramfs",
                        path=str(binary)) from exc
    files = {"setpriv": binary}
    for line in out.splitlines():
        words = line.split()
        if "=>" in words and len(words) > words.index("=>") + 1 and words[words.index("=>") + 1].startswith("/"):
            files[words[0]] = Path(words[words.index("=>") + 1])
        elif words and words[0].startswith("/") and "ld-linux" in words[0]:
            files["ld.so"] = Path(words[0])
    if "ld.so" not in files:
        raise HostError(f"no dynamic loader found for {binary}", op="build initramfs", path=str(binary))
    return files


class CpioWriter:
    """Writes a cpio newc archive: 110-byte ASCII headers, names and data padded to 4 bytes."""

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self._ino += 1
        self._out.write(header + encoded)
        self._out.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self._out.write(data + b"\0" * (-len(data) % 4))

    def directory(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, 0o040000 | perm, b"")

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, 0o100000 | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120000 | 0o777, target.encode())

    def finish(self) -> bytes:
        self._ino = 0
        self._entry("TRAILER!!!", 0, b"")
        return self._out.getvalue()


def guest_file(name: str) -> bytes:
    return resources.files("isobox.drivers.vm").joinpath("guest", name).read_bytes()


def _applets(busybox: Path) -> list[str]:
    try:
        out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise HostError(f"cannot list busybox applets: {exc}", op="build initramfs", path=str(busybox)) from exc
    return sorted({name for name in out.split() if name and "/" not in name and name != "busybox"})


def build_archive(busybox: Path, modules: list[Path], optional: dict[str, list[Path]] | None = None) -> bytes:
    cpio = CpioWriter()
    for directory in _DIRS:
        cpio.directory(directory, 0o1777 if directory == "tmp" else 0o755)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in _applets(busybox):
        cpio.symlink(f"bin/{applet}", "busybox")
    for name, path in setpriv_files().items():
        cpio.file(f"{SETPRIV_DIR.lstrip('/')}/{name}", path.read_bytes(), 0o755)
    cpio.file("init", guest_file("init.sh"), 0o755)
    cpio.file("etc/isobox/agent.sh", guest_file("agent.sh"))
    cpio.file("etc/isobox/modules", "".join(f"{m.name}\n" for m in modules).encode())
    for group, extra in (optional or {}).items():
        cpio.file(f"etc/isobox/modules-{group}", "".join(f"{m.name}\n" for m in extra).encode())
    every = {m.name: m for m in modules} | {m.name: m for extra in (optional or {}).values() for m in extra}
    for name, module in every.items():
        cpio.file(f"lib/modules/{name}", module.read_bytes())
    return cpio.finish()


def _cache_key(busybox: Path, kernel: guest_kernel.Kernel) -> str:
    # File identities (size, mtime) instead of content hashes: this runs on every VM start and must
    # not read megabytes; the modules are those of the kernel version, whose directory is immutable.
    digest = hashlib.sha256()
    for path in (busybox, kernel.vmlinuz, kernel.modules_dir, SETPRIV):
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}".encode())
    for name in ("init.sh", "agent.sh"):
        digest.update(guest_file(name))
    digest.update(kernel.version.encode())
    digest.update(",".join(guest_kernel.WANTED_MODULES).encode())
    digest.update(repr(sorted(guest_kernel.OPTIONAL_MODULES.items())).encode())
    return digest.hexdigest()[:24]


def ensure(cache_dir: Path, lock_dir: Path, kernel: guest_kernel.Kernel) -> Path:
    """The cached initramfs for this kernel, built on first use (under a lock: concurrent starts)."""
    busybox = find_busybox()
    target = cache_dir / "initramfs" / f"{_cache_key(busybox, kernel)}.cpio"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(lock_dir, "vm-initramfs"):
        if target.is_file():
            return target
        modules = guest_kernel.load_order(kernel)
        optional = {
            group: guest_kernel.load_order(kernel, names, loaded=tuple(modules))
            for group, names in guest_kernel.OPTIONAL_MODULES.items()
        }
        temporary = target.with_suffix(f".tmp{os.getpid()}")
        try:
            temporary.write_bytes(build_archive(busybox, modules, optional))
            os.replace(temporary, target)
        except OSError as exc:
            raise HostError(f"cannot write the initramfs: {exc}", op="build initramfs", path=str(target)) from exc
        finally:
            temporary.unlink(missing_ok=True)
    return target
