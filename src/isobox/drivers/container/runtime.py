"""The OCI runtime (crun or runc), chosen by probing which one really works on this host.

A name is not enough: crun 1.8 refuses hybrid cgroup hosts, runc works there; on a v2 host crun is
the faster choice. The probe runs a tiny container once and caches the verdict (keyed by the binary's
identity) in the run directory, so later commands pay nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isobox.errors import HostError, NotFoundError, WorkloadError

log = logging.getLogger(__name__)

CANDIDATES = ("crun", "runc")
PROBE_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Runtime:
    name: str
    path: str
    root: str  # the runtime's own state directory (--root), private to isobox

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]

    def run(self, *args: str, op: str, workload: str = "", timeout_s: float = 30.0, check: bool = True) -> str:
        try:
            done = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise WorkloadError(f"{self.name} {args[0]} timed out after {timeout_s}s", op=op, id=workload) from exc
        if check and done.returncode != 0:
            message = runtime_message(done.stderr) or f"exit status {done.returncode}"
            if "does not exist" in message or "not found" in message.lower():
                raise NotFoundError(f"{self.name}: {message}", op=op, id=workload)
            raise WorkloadError(f"{self.name} {args[0]} failed: {message}", op=op, id=workload)
        return done.stdout

    def state(self, workload: str, timeout_s: float = 30.0) -> dict[str, Any] | None:
        try:
            done = subprocess.run(self.argv("state", workload), capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise WorkloadError(f"{self.name} state timed out after {timeout_s}s", op="observe", id=workload) from exc
        if done.returncode != 0:
            return None
        try:
            value = json.loads(done.stdout)
        except ValueError:  # a state file the runtime could not read well: as good as none
            return None
        return value if isinstance(value, dict) else None

    def pids(self, workload: str) -> list[int]:
        out = self.run("ps", "--format", "json", workload, op="top", workload=workload)
        return [int(p) for p in json.loads(out or "[]")]


def runtime_message(stderr: str) -> str:
    """runc logs JSON or logfmt lines; keep the last message."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    try:
        parsed = json.loads(last)
        if isinstance(parsed, dict) and "msg" in parsed:
            return str(parsed["msg"])
    except json.JSONDecodeError:
        pass
    marker = 'msg="'
    if marker in last:  # logfmt: the value is quoted, with its own quotes escaped
        return last.split(marker, 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    return last


def _identity(path: str) -> str:
    info = os.stat(path)
    return f"{path}:{info.st_size}:{info.st_mtime_ns}"


def _probe_one(path: str, busybox: Path) -> str | None:
    """Run `true` in a minimal container; None if it works, else the runtime's complaint."""
    import tempfile  # only when the probe is not cached: it costs every start a few ms otherwise

    with tempfile.TemporaryDirectory(prefix="isobox-probe-") as tmp:
        bundle = Path(tmp)
        (bundle / "rootfs" / "proc").mkdir(parents=True)
        shutil.copy2(busybox, bundle / "rootfs" / "busybox")
        config = {
            "ociVersion": "1.0.2",
            "process": {"args": ["/busybox", "true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": []},
            "root": {"path": "rootfs", "readonly": True},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {
                "namespaces": [{"type": "mount"}, {"type": "pid"}],
                "cgroupsPath": f"/isobox/probe-{os.getpid()}",
            },
        }
        (bundle / "config.json").write_text(json.dumps(config))
        argv = [path, "--root", str(bundle / "state"), "run", "--bundle", str(bundle), f"isobox-probe-{os.getpid()}"]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            return "timed out"
        return None if done.returncode == 0 else (runtime_message(done.stderr) or f"exit {done.returncode}")


def probe(run_dir: Path, busybox: Path = Path("/bin/busybox")) -> Runtime:
    """The first of ISOBOX_RUNTIME or crun, runc that runs a container here; cached in run_dir."""
    wanted = os.environ.get("ISOBOX_RUNTIME")
    names = (wanted,) if wanted else CANDIDATES
    cache = run_dir / "runtime.json"
    state_root = str(run_dir / "oci")
    try:
        cached = json.loads(cache.read_text())
        if cached["name"] in names and cached["identity"] == _identity(cached["path"]):
            return Runtime(cached["name"], cached["path"], state_root)
    except (OSError, KeyError, ValueError):
        pass
    complaints = []
    for name in names:
        path = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        if not path:
            complaints.append(f"{name}: not installed")
            continue
        problem = _probe_one(path, busybox) if busybox.is_file() else None
        if problem is None:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps({"name": name, "path": path, "identity": _identity(path)}))
            except OSError:  # a full disk: probed again next time
                cache.unlink(missing_ok=True)
            log.debug("OCI runtime: %s (%s)", name, path)
            return Runtime(name, path, state_root)
        complaints.append(f"{name}: {problem}")
        log.info("OCI runtime %s does not work here: %s", name, problem)
    raise HostError("no working OCI runtime: " + "; ".join(complaints), op="probe runtime")
