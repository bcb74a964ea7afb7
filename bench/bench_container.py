"""Containers: `run --rm busybox true` latency, and the cost of 100 idle containers.

Peers, on the same rootfs (the built-in busybox image's layer) in one run:
- podman (runc, cgroupfs, private storage), both with --network none and with their default network,
- runc run on a prepared bundle (the floor: no image store, no monitor).

The two tools keep a network's bridge differently: isobox's default network stays up after its last
workload (as Docker's docker0), podman's goes with its last container (netavark). So the bridged cases
are measured both ways for each tool: as each does by default, and with the other's habit (isobox's
bridge pruned before each run, in a second root; podman's held up by an idle container on a network of
its own). The ratios are to podman's default.
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
WARM_NET = "isoboxbench"


def _isobox(root: Path, *args: str, root_name: str = "isobox") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ISOBOX_ROOT=str(root / root_name))
    return subprocess.run([ISOBOX_BIN, *args], env=env, capture_output=True, text=True, check=True)


def _prepare(root: Path) -> Path:
    """The busybox layer in isobox's store, imported into podman and unpacked as a runc bundle."""
    from isobox.images import builtin
    from isobox.service.context import open_context

    record = builtin.install(open_context(root / "isobox-cold").images)
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
    cold_env = {"ISOBOX_ROOT": str(root / "isobox-cold")}
    counter = iter(range(1_000_000))
    isobox_run = [ISOBOX_BIN, "run", "--rm", "busybox", "true"]
    podman_run = [*_podman(root), *PODMAN_RUN]
    cases = [
        Case("isobox --network none", [ISOBOX_BIN, "run", "--rm", "--network", "none", "busybox", "true"], env=env),
        Case("podman --network none", [*podman_run, "--network", "none", PODMAN_IMAGE, "true"]),
        Case("isobox (default network)", isobox_run, env=env),
        Case("podman (default network)", [*podman_run, PODMAN_IMAGE, "true"]),
        Case(
            "isobox (default network, bridge down before each run)",
            isobox_run,
            env=cold_env,
            setup=lambda: _prune_networks(root, "isobox-cold"),
        ),
        Case(
            "podman (bridge held up by an idle container)",
            [*podman_run, "--network", WARM_NET, PODMAN_IMAGE, "true"],
        ),
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
    podman = _podman(root)
    subprocess.run([*podman, "network", "create", WARM_NET], check=True, capture_output=True)
    holder = [*podman, "run", "-d", "--name", "holder", "--network", WARM_NET, *PODMAN_RUN[2:], PODMAN_IMAGE]
    subprocess.run([*holder, "sleep", "3600"], check=True, capture_output=True)
    try:
        run_cases("container_run_rm", cases, runs=runs, warmup=2, baseline="podman (default network)")
    finally:
        subprocess.run([*podman, "rm", "-f", "-t", "0", "holder"], capture_output=True)
        subprocess.run([*podman, "network", "rm", "-f", WARM_NET], capture_output=True)


def _prune_networks(root: Path, root_name: str) -> None:
    _isobox(root, "network", "prune", "-f", root_name=root_name)


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
        for name in ("isobox", "isobox-cold"):
            _prune_networks(root, name)
        subprocess.run([*_podman(root), "rm", "-f", "-a", "-t", "0"], capture_output=True)
        subprocess.run([*_podman(root), "system", "reset", "-f"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
