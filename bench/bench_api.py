"""`isobox serve`: `docker run --rm busybox true` through the Docker API, and a load test of the API.

Latency, peers side by side in one run, on the same rootfs (the built-in busybox image's layer):
- the docker CLI against a warm `isobox serve` (no interpreter start per run: the server is up),
- `podman run --rm` (runc, cgroupfs, the same ulimits as isobox's bench_container),
each with --network none and with its default network. The goal is 0.3x podman's time.

Load: 32 concurrent clients create, start, inspect and remove containers (default network: a veth each)
for 60 s through the API. Reported: requests/s, latency percentiles per operation, failed requests (must
be 0), the server's memory at the start and at the end (flat), and what is left afterwards (workloads,
mounts under the root, isobox veths, cgroups: all must be none).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.bench_container import PODMAN_IMAGE, PODMAN_RUN, _podman
from bench.harness import RESULTS_DIR, BenchError, Case, host_facts, percentile, require, rss_kb, run_cases

DOCKER = "/usr/local/bin/docker"
CLIENTS = 32


def _serve(root: Path) -> tuple[subprocess.Popen[bytes], Path]:
    socket_path = root / "isobox" / "run" / "docker.sock"
    env = dict(os.environ, ISOBOX_ROOT=str(root / "isobox"))
    log = open(root / "serve.log", "wb")  # noqa: SIM115 - the server's log for as long as it runs
    process = subprocess.Popen([sys.executable, "-m", "isobox.cli.main", "serve", "-H", f"unix://{socket_path}"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = subprocess.run([DOCKER, "version"], env=dict(os.environ, DOCKER_HOST=f"unix://{socket_path}"),
                              capture_output=True)
        if done.returncode == 0:
            return process, socket_path
        time.sleep(0.2)
    process.kill()
    raise BenchError("isobox serve did not answer")


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)


def _prepare_podman(root: Path) -> None:
    from isobox.images import builtin
    from isobox.service.context import open_context

    ctx = open_context(root / "isobox")
    record = builtin.install(ctx.images)
    layer_blob = ctx.images.blobs.path(record.layers[0].digest)
    subprocess.run([*_podman(root), "import", str(layer_blob), PODMAN_IMAGE], check=True, capture_output=True)
    ctx.close()


def _latency(root: Path, socket_path: Path, runs: int) -> None:
    docker_env = {"DOCKER_HOST": f"unix://{socket_path}"}
    podman_run = [*_podman(root), *PODMAN_RUN]
    cases = [
        Case("docker → isobox serve --network none", [DOCKER, "run", "--rm", "--network", "none", "busybox", "true"],
             env=docker_env),
        Case("podman --network none", [*podman_run, "--network", "none", PODMAN_IMAGE, "true"]),
        Case("docker → isobox serve (default network)", [DOCKER, "run", "--rm", "busybox", "true"], env=docker_env),
        Case("podman (default network)", [*podman_run, PODMAN_IMAGE, "true"]),
    ]
    run_cases("api_run_rm", cases, runs=runs, warmup=2, baseline="podman (default network)")


def _client(socket_path: Path, stop: threading.Event, samples: dict[str, list[float]], failures: list[str],
            lock: threading.Lock, created: list[str]) -> None:
    import httpx

    transport = httpx.HTTPTransport(uds=str(socket_path))
    with httpx.Client(transport=transport, base_url="http://docker/v1.44", timeout=120) as client:
        while not stop.is_set():
            steps = (
                ("create", "POST", "/containers/create", {"Image": "busybox", "Cmd": ["sleep", "30"]}),
                ("start", "POST", "/containers/{id}/start", None),
                ("inspect", "GET", "/containers/{id}/json", None),
                ("remove", "DELETE", "/containers/{id}?force=1", None),
            )
            ident = ""
            for name, method, path, body in steps:
                began = time.perf_counter()
                try:
                    answer = client.request(method, path.format(id=ident), json=body)
                    ok = answer.status_code < 300
                except httpx.HTTPError as exc:
                    ok, answer = False, None
                    detail = str(exc)
                elapsed = (time.perf_counter() - began) * 1e3
                with lock:
                    samples[name].append(elapsed)
                    if not ok:
                        failures.append(f"{name}: {answer.status_code if answer else ''} "
                                        f"{answer.text[:200] if answer else detail}")
                if not ok:
                    break
                if name == "create":
                    ident = answer.json()["Id"]
                    with lock:
                        created.append(ident)


def _leaks(root: Path, socket_path: Path, created: list[str]) -> dict[str, int]:
    """What the load test's own workloads left (other isobox roots on this host are not counted)."""
    import httpx

    from isobox.network import ipam

    with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://docker") as client:
        workloads = len(client.get("/v1.44/containers/json", params={"all": "1"}).json())
    with open("/proc/self/mountinfo") as info:
        mounts = sum(1 for line in info if line.split()[4].startswith(str(root / "isobox")))
    links = {line.split(": ")[1].split("@")[0] for line in
             subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()}
    veths = sum(1 for ident in created if ipam.veth_name(ident, 0) in links)
    cgroups = sum(1 for ident in created for _ in Path("/sys/fs/cgroup").glob(f"*/isobox/{ident}"))
    return {"workloads": workloads, "mounts": mounts, "veths": veths, "cgroups": cgroups,
            "workloads_made": len(created)}


def _load(root: Path, server: subprocess.Popen[bytes], socket_path: Path, seconds: float) -> dict[str, object]:
    samples: dict[str, list[float]] = {n: [] for n in ("create", "start", "inspect", "remove")}
    failures: list[str] = []
    created: list[str] = []
    lock, stop = threading.Lock(), threading.Event()
    memory_kb: list[int] = []
    threads = [threading.Thread(target=_client, args=(socket_path, stop, samples, failures, lock, created))
               for _ in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    while time.perf_counter() - began < seconds:
        memory_kb.append(rss_kb([server.pid], tree=False, metric="rss"))
        time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    everything = [v for values in samples.values() for v in values]
    tail = max(1, len(memory_kb) // 5)
    return {
        "clients": CLIENTS, "seconds": round(elapsed, 1), "requests": len(everything),
        "requests_per_s": round(len(everything) / elapsed, 1), "failed": len(failures), "failures": failures[:10],
        "p50_ms": round(percentile(everything, 50), 1), "p99_ms": round(percentile(everything, 99), 1),
        "per_operation_ms": {n: {"count": len(v), "p50": round(statistics.median(v), 1) if v else None,
                                 "p99": round(percentile(v, 99), 1) if v else None} for n, v in samples.items()},
        "server_rss_kb_first_fifth": round(statistics.median(memory_kb[:tail])),
        "server_rss_kb_last_fifth": round(statistics.median(memory_kb[-tail:])),
        "left_behind": _leaks(root, socket_path, created), "host": host_facts(),
    }


def _write_load(result: dict[str, object]) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "api_load.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {name} | {v['count']} | {v['p50']} | {v['p99']} |"  # type: ignore[index]
                     for name, v in result["per_operation_ms"].items())  # type: ignore[attr-defined]
    text = (f"### api_load\n\n{result['clients']} concurrent clients for {result['seconds']} s, each creating, "
            f"starting, inspecting and removing containers (default network) through `isobox serve`.\n\n"
            f"- requests: {result['requests']} ({result['requests_per_s']}/s), failed: {result['failed']}\n"
            f"- latency: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms\n"
            f"- server RSS: {result['server_rss_kb_first_fifth']} kB (first fifth) → "
            f"{result['server_rss_kb_last_fifth']} kB (last fifth)\n"
            f"- left behind: {result['left_behind']}\n\n"
            "| operation | count | p50 (ms) | p99 (ms) |\n|---|---:|---:|---:|\n" + rows + "\n")
    (RESULTS_DIR / "api_load.md").write_text(text)
    print(text, flush=True)


def main(runs: int = 10, load_s: float = 60.0) -> None:
    require("podman", "runc", DOCKER)
    root = Path(tempfile.mkdtemp(prefix="isobox-bench-api-", dir="/var/tmp"))
    server, socket_path = _serve(root)
    try:
        _prepare_podman(root)
        _latency(root, socket_path, runs)
        _write_load(_load(root, server, socket_path, load_s))
    finally:
        _stop(server)
        subprocess.run([*_podman(root), "rm", "-a", "-f", "-t", "0"], capture_output=True)
        env = dict(os.environ, ISOBOX_ROOT=str(root / "isobox"))
        subprocess.run([sys.executable, "-m", "isobox.cli.main", "network", "prune"], env=env, capture_output=True)
        subprocess.run(["rm", "-rf", str(root)], check=False)
