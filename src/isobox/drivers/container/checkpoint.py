"""A running container's process state, saved and restored with CRIU through the OCI runtime.

``runc checkpoint --leave-running`` dumps the processes into a directory of CRIU images and lets
them run on; ``conmon --restore DIR`` (conmon runs ``runc restore``) brings them back, in the same
container id, under a new conmon that keeps the stdio, the log and the exit code as for a start.
runc records the container's stdio pipes (descriptors.json) and hands CRIU the new conmon's pipes
on restore, so output continues in the same log.

CRIU is found as ``$ISOBOX_CRIU`` or ``criu`` on PATH and is used only if ``criu check`` passes, a
verdict cached per binary (its path, size, mtime and inode) under the run directory, as the runtime
probe is. Debian 12's CRIU 3.17 fails that check on kernels from 6.13 on ("Unexpected rt vDSO area
bounds": the vDSO data became two mappings); CRIU 4.1 and later work there.

Network namespaces: isobox's bridge networks use namespaces isobox made, which outlive the
checkpoint unchanged. In one the runtime made itself (``--network none``) runc restores no devices,
so isobox brings its loopback up again after the restore, as runc did at create.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from isobox.command import run
from isobox.errors import HostError, WorkloadError

CRIU_ENV = "ISOBOX_CRIU"
CHECK_TIMEOUT_S = 60.0
DUMP_TIMEOUT_S = 600.0  # a checkpoint writes the memory of every process: generous, but bounded


@dataclass(frozen=True)
class Criu:
    path: str | None
    usable: bool
    reason: str  # why it is not usable ("" when it is)


def find(run_dir: Path) -> Criu:
    """The CRIU to use and whether ``criu check`` passes on this host (cached per binary)."""
    path = os.environ.get(CRIU_ENV) or shutil.which("criu", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not path or not os.path.isfile(path):
        return Criu(None, False, "CRIU is not installed (Debian package criu, or set ISOBOX_CRIU)")
    info = os.stat(path)
    key = f"{path}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
    cache = run_dir / "criu.json"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return Criu(path, bool(cached["usable"]), str(cached["reason"]))
    except (OSError, ValueError, KeyError):
        pass
    try:
        done = subprocess.run([path, "check"], capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Criu(path, False, f"criu check failed: {exc}")
    errors = [line for line in (done.stderr + done.stdout).splitlines() if line.startswith("Error")]
    usable = done.returncode == 0
    reason = (
        "" if usable else f"`{path} check` fails on this host: {(errors or ['exit status ' + str(done.returncode)])[0]}"
    )
    temporary = cache.with_suffix(f".tmp{os.getpid()}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps({"key": key, "usable": usable, "reason": reason}))
        os.replace(temporary, cache)
    except OSError:  # a full disk: the answer holds, it is only not kept for next time
        temporary.unlink(missing_ok=True)
    return Criu(path, usable, reason)


def dump(runtime: str, runtime_root: str, criu: Criu, workload: str, images: Path) -> None:
    """Save the running container's processes into ``images`` and let them run on."""
    if not criu.usable or criu.path is None:
        raise HostError(criu.reason, op="checkpoint container", id=workload)
    work = images.with_name(images.name + ".work")
    images.mkdir(parents=True)
    work.mkdir(exist_ok=True)
    command = [
        runtime, f"--root={runtime_root}", f"--criu={criu.path}", "checkpoint", "--leave-running",
        "--tcp-established", "--file-locks", f"--image-path={images}", f"--work-path={work}", workload,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=DUMP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(images, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        raise WorkloadError(f"checkpoint did not finish within {DUMP_TIMEOUT_S:.0f} s", op="checkpoint container",
                            id=workload) from exc
    if done.returncode != 0:
        detail = _criu_error(work / "dump.log") or done.stderr.strip()
        shutil.rmtree(images, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        raise WorkloadError(f"checkpoint failed: {detail}", op="checkpoint container", id=workload)
    shutil.rmtree(work, ignore_errors=True)


def restore_options(criu: Criu, images: Path, workload: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(runtime global args, restore args) for conmon --restore: the CRIU binary and a work dir."""
    if not criu.usable or criu.path is None:
        raise HostError(criu.reason, op="restore container", id=workload)
    work = images.with_name(images.name + ".work")
    work.mkdir(exist_ok=True)
    return (f"--criu={criu.path}",), (f"--work-path={work}", "--tcp-established", "--file-locks")


def restore_error(images: Path) -> str:
    return _criu_error(images.with_name(images.name + ".work") / "restore.log")


def _criu_error(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line.split(": ", 1)[-1] if ": " in line else line for line in lines if line.startswith("Error")]
    return "; ".join(errors[:3])


def loopback_up(pid: int, workload: str) -> None:
    run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "link", "set", "lo", "up"], op="restore container", id=workload)
