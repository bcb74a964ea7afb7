"""Containers: `run --rm busybox true` latency, and the cost of 100 idle containers.

Peers, on the same rootfs (the built-in busybox image's layer) in one run:
- podman (runc, cgroupfs, private storage), both with --network none and with their default network,
- runc run on a prepared bundle (the floor: no image store, no monitor).
Idle containers: start rate of N detached `sleep` containers, and the host memory each one costs
(PSS of everything left running for it: conmon and the container's process), isobox vs podman.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import Case, report, require, rss_kb, run_cases, summarize

ISOBOX_BIN = shutil.which("isobox") or str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "isobox")
PODMAN_IMAGE = "localhost/isobox-bench-busybox:latest"


def _podman(root: Path) -> list[str]:
    return [
        "podman",
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
        "--root",
        str(root / "storage"),
        "--runroot",
        str(root / "run"),
        "--events-backend",
        "none",
    ]


PODMAN_RUN = ["run", "--rm", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=9000:9000"]


def _isobox(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ISOBOX_ROOT=str(root / "isobox"))
    return subprocess.run([ISOBOX_BIN, *args], env=env, capture_output=True, text=True, check=True)


def _prepare(root: Path) -> Path:
    """The busybox layer in isobox's store, imported into podman and unpacked as a runc bundle."""
    from isobox.images import builtin
    from isobox.service.context import open_context

    ctx = open_context(root / "isobox")
    record = builtin.install(ctx.images)
    layer_blob = ctx.images.blobs.path(record.layers[0].digest)
    subprocess.run([*_podman(root), "import", str(layer_blob), PODMAN_IMAGE], check=True, capture_output=True)
    bundle = root / "bundle"
    shutil.copytree(ctx.images.layer_dirs(record)[0], bundle / "rootfs", symlinks=True)
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["true"])
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def _latency(root: Path, bundle: Path, runs: int) -> None:
    env = {"ISOBOX_ROOT": str(root / "isobox")}
    counter = iter(range(1_000_000))
    cases = [
        Case("isobox --network none", [ISOBOX_BIN, "run", "--rm", "--network", "none", "busybox", "true"], env=env),
        Case("podman --network none", [*_podman(root), *PODMAN_RUN, "--network", "none", PODMAN_IMAGE, "true"]),
        Case("isobox (default network)", [ISOBOX_BIN, "run", "--rm", "busybox", "true"], env=env),
        Case("podman (default network)", [*_podman(root), *PODMAN_RUN, PODMAN_IMAGE, "true"]),
        Case(
            "runc",
            lambda: subprocess.run(
                ["runc", "--root", str(root / "runc"), "run", "--bundle", str(bundle), f"bench-{next(counter)}"],
                check=True,
                stdout=subprocess.DEVNULL,
            ),
            requires=("runc",),
        ),
    ]
    run_cases("container_run_rm", cases, runs=runs, warmup=2, baseline="podman --network none")


def _idle(root: Path, count: int) -> None:
    """Start `count` idle containers with each tool; time it, then measure the memory left running."""
    starts: dict[str, list[float]] = {"isobox": [], "podman": []}
    memory: dict[str, list[float]] = {"isobox": [], "podman": []}
    for name in ("isobox", "podman"):
        began = time.perf_counter()
        for i in range(count):
            if name == "isobox":
                _isobox(root, "run", "-d", "--network", "none", "--name", f"idle{i}", "busybox", "sleep", "3600")
            else:
                subprocess.run(
                    [
                        *_podman(root),
                        "run",
                        "-d",
                        "--name",
                        f"idle{i}",
                        "--network",
                        "none",
                        "--ulimit",
                        "nofile=20000:20000",
                        "--ulimit",
                        "nproc=9000:9000",
                        PODMAN_IMAGE,
                        "sleep",
                        "3600",
                    ],
                    check=True,
                    capture_output=True,
                )
        starts[name].append(count / (time.perf_counter() - began))
        time.sleep(1.0)
        pids = _conmon_pids(root / ("isobox" if name == "isobox" else "run"))
        memory[name].append(rss_kb(pids, tree=True, metric="pss") / max(len(pids), 1))
        if name == "isobox":
            ids = _isobox(root, "ps", "-q").stdout.split()
            _isobox(root, "rm", "-f", *ids)
        else:
            subprocess.run([*_podman(root), "rm", "-f", "-a", "-t", "0"], check=True, capture_output=True)
    report(summarize("idle_start_rate", starts, baseline="podman", unit="containers/s"))
    report(summarize("idle_memory_per_container", memory, baseline="podman", unit="kB PSS"))


def _conmon_pids(marker: Path) -> list[int]:
    """conmon processes whose command line mentions this tool's state directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.split(b"\0")[0].endswith(b"conmon") and str(marker).encode() in cmdline:
            found.append(int(entry.name))
    return found


def main(runs: int = 10, idle: int = 100) -> None:
    require("runc", "conmon")
    root = Path(tempfile.mkdtemp(prefix="isobox-bench-", dir="/var/tmp"))
    try:
        bundle = _prepare(root)
        _latency(root, bundle, runs)
        if shutil.which("podman"):
            _idle(root, idle if runs >= 10 else max(runs, 5))
    finally:
        subprocess.run([*_podman(root), "rm", "-f", "-a", "-t", "0"], capture_output=True)
        subprocess.run([*_podman(root), "system", "reset", "-f"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
