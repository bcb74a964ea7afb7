"""Where isobox keeps its state: one setting (ISOBOX_ROOT) relocates all of it.

Default layout (as root):  /var/lib/isobox  persistent state (images, layers, workloads, SQLite)
                           /run/isobox      runtime state (runc state, sockets, locks), gone at reboot
With ISOBOX_ROOT=DIR:      DIR/lib and DIR/run, so every test run can use its own private root.

Read-only assets (the guest kernel that setup fetched) live in the system data directory and are found
from a relocated root too, so a private test root does not need its own copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LIB = Path("/var/lib/isobox")
DEFAULT_RUN = Path("/run/isobox")


@dataclass(frozen=True)
class Paths:
    lib: Path
    run: Path
    assets: Path
    root: Path | None = None  # the ISOBOX_ROOT this came from, None for the system defaults

    @property
    def db(self) -> Path:
        return self.lib / "state.db"

    @property
    def blobs(self) -> Path:
        return self.lib / "blobs"

    @property
    def layers(self) -> Path:
        return self.lib / "layers"

    @property
    def workloads(self) -> Path:
        return self.lib / "workloads"

    @property
    def tmp(self) -> Path:
        return self.lib / "tmp"

    @property
    def records(self) -> Path:
        """JSON copies of the records (state/mirror.py), for `isobox system check`."""
        return self.lib / "records"

    @property
    def locks(self) -> Path:
        return self.run / "locks"

    @property
    def kernel_dir(self) -> Path:
        """Guest kernels: the private root's own if present, else the system one fetched by setup."""
        own = self.lib / "kernel"
        return own if own.is_dir() else self.assets / "kernel"

    @property
    def cache(self) -> Path:
        """Derived artefacts (VM root disks, initramfs) that can be rebuilt at any time."""
        return self.lib / "cache"

    def ensure(self) -> None:
        for directory in (self.lib, self.run, self.blobs, self.layers, self.workloads, self.tmp, self.locks):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Traversable, not listable, by others: the root of a --userns=auto container (an unprivileged
        # host uid) must reach its own rootfs under workloads/<id>/ and the layers under layers/.
        for directory in (self.lib, self.workloads, self.layers):
            directory.chmod(0o711)
        if self.root is not None:
            self.root.chmod(self.root.stat().st_mode | 0o111)


def paths_from_env(root: str | os.PathLike[str] | None = None) -> Paths:
    """Resolve the state directories from an explicit root, ISOBOX_ROOT, or the system defaults."""
    chosen = root if root is not None else os.environ.get("ISOBOX_ROOT")
    if chosen:
        base = Path(chosen).absolute()
        return Paths(lib=base / "lib", run=base / "run", assets=DEFAULT_LIB, root=base)
    return Paths(lib=DEFAULT_LIB, run=DEFAULT_RUN, assets=DEFAULT_LIB)


DEFAULT_POLICY_PATH = Path("/etc/isobox/policy.toml")
POLICY_ENV = "ISOBOX_POLICY"


def policy_path() -> tuple[Path, bool]:
    """The isolation-policy file to read, and whether it was named explicitly (ISOBOX_POLICY / --policy)."""
    named = os.environ.get(POLICY_ENV)
    return (Path(named), True) if named else (DEFAULT_POLICY_PATH, False)
