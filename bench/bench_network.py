"""Networking: TCP throughput and connection rate, container to container and host to a published port.

isobox (its default network: bridge, veth, nftables DNAT/masquerade) against podman's default network on
the same machine (netavark, or CNI where podman still uses it: `podman info` names the backend in the
JSON), the same busybox rootfs for both, and the same tools inside (busybox nc, httpd, wget), so the
ratios compare the data paths and not the programs:

- c2c throughput: `dd | nc` from one container to another's `nc -l`, 256 MiB, timed inside the client
  (/proc/uptime, 10 ms resolution), in MB/s.
- c2c connections: 100 sequential `wget` of a tiny file from the other container's httpd, in connections/s.
- host→published throughput and connections: the same servers reached from this host at
  127.0.0.1:<published port> (Python sockets, large buffers), in MB/s and connections/s.
Higher is better for all four (the ratio column is case / isobox). Only loopback and the tools' own
bridges carry traffic.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.bench_container import ISOBOX_BIN, PODMAN_IMAGE, _podman
from bench.harness import Skipped, report, require, summarize

MIB = 1 << 20
STREAM_MIB = 256
CONNECTIONS = 100
# The nc server's stdin is a FIFO held open read-write, so it never sees EOF (busybox nc quits on stdin EOF).
NC_SERVER = "mkfifo /tmp/f; exec 3<>/tmp/f; while true; do nc -l -p 5001 </tmp/f >/dev/null; done"
WEB_SERVER = "mkdir -p /www; echo ok > /www/i; exec httpd -f -p 80 -h /www"
STREAM = (
    "s=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero bs=65536 count={blocks} 2>/dev/null | nc {ip} 5001; "
    "e=$(cut -d' ' -f1 /proc/uptime); echo $s $e"
)
IMAGE = {"isobox": "busybox", "podman": PODMAN_IMAGE}
CONNECT = (
    "s=$(cut -d' ' -f1 /proc/uptime); i=0; while [ $i -lt {n} ]; do wget -q -O /dev/null http://{ip}/i || exit 1; "
    "i=$((i+1)); done; e=$(cut -d' ' -f1 /proc/uptime); echo $s $e"
)


class Tool:
    """One contestant: how to run, exec into, address and remove its containers."""

    def __init__(
        self, name: str, base: list[str], env: dict[str, str] | None = None, run: tuple[str, ...] = ()
    ) -> None:
        self.name, self.base, self.env, self.run_flags = name, base, env, run

    def __call__(self, *args: str) -> str:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, env=self.env, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def ip(self, name: str) -> str:
        found = json.loads(self("inspect", name))[0]
        if self.name == "isobox":
            return str(found["plan"]["network"]["interfaces"][0]["ip"])
        networks = found["NetworkSettings"]["Networks"]
        return str(next(iter(networks.values()))["IPAddress"])


def _elapsed(output: str) -> float:
    start, end = (float(x) for x in output.split()[-2:])
    return max(end - start, 0.01)


def _host_stream(port: int) -> float:
    chunk = bytes(MIB)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        began = time.perf_counter()
        for _ in range(STREAM_MIB):
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # the server closes when it has read everything
        return STREAM_MIB * MIB / 1e6 / (time.perf_counter() - began)


def _host_connect(port: int) -> float:
    began = time.perf_counter()
    for _ in range(CONNECTIONS):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET /i HTTP/1.0\r\n\r\n")
            while conn.recv(4096):
                pass
    return CONNECTIONS / (time.perf_counter() - began)


def _retry(measure: Callable[[], float], attempts: int = 20) -> float:
    """The nc server restarts between connections: a run that finds it not listening yet is retried."""
    for attempt in range(attempts):
        try:
            return measure()
        except (OSError, RuntimeError, ValueError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def _start(tool: Tool, ports: tuple[int, int]) -> tuple[str, str]:
    tool("run", *tool.run_flags, "-d", "--name", "bn-nc", "-p", f"127.0.0.1:{ports[0]}:5001", IMAGE[tool.name],
         "sh", "-c", NC_SERVER)
    tool("run", *tool.run_flags, "-d", "--name", "bn-web", "-p", f"127.0.0.1:{ports[1]}:80", IMAGE[tool.name],
         "sh", "-c", WEB_SERVER)
    tool("run", *tool.run_flags, "-d", "--name", "bn-client", IMAGE[tool.name], "sleep", "3600")
    return tool.ip("bn-nc"), tool.ip("bn-web")


Samples = dict[str, dict[str, list[float]]]


def _round(tool: Tool, addresses: tuple[str, str], ports: tuple[int, int], samples: Samples) -> None:
    nc_ip, web_ip = addresses
    blocks = STREAM_MIB * MIB // 65536
    stream = _retry(lambda: STREAM_MIB * MIB / 1e6 / _elapsed(
        tool("exec", "bn-client", "sh", "-c", STREAM.format(blocks=blocks, ip=nc_ip))))
    samples["c2c_throughput"][tool.name].append(stream)
    connect = _retry(lambda: CONNECTIONS / _elapsed(
        tool("exec", "bn-client", "sh", "-c", CONNECT.format(n=CONNECTIONS, ip=web_ip))))
    samples["c2c_connections"][tool.name].append(connect)
    samples["host_published_throughput"][tool.name].append(_retry(lambda: _host_stream(ports[0])))
    samples["host_published_connections"][tool.name].append(_retry(lambda: _host_connect(ports[1])))


def _free_ports() -> tuple[int, int]:
    found = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            found.append(int(probe.getsockname()[1]))
    return found[0], found[1]


def _tools(root: Path) -> list[Tool]:
    from bench.bench_container import _prepare

    tools = [Tool("isobox", [ISOBOX_BIN], env=dict(os.environ, ISOBOX_ROOT=str(root / "isobox")))]
    if shutil.which("podman"):
        _prepare(root)  # imports the same busybox layer into podman's private storage
        # The rlimits bench_container gives podman too: its defaults exceed what this host allows.
        limits = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=9000:9000")
        tools.append(Tool("podman", _podman(root), run=limits))
    return tools


def main(runs: int = 5) -> None:
    require("runc", "conmon", "nft", "dnsmasq")
    root = Path(tempfile.mkdtemp(prefix="isobox-bench-net-", dir="/var/tmp"))
    names = ("c2c_throughput", "c2c_connections", "host_published_throughput", "host_published_connections")
    samples: Samples = {n: {} for n in names}
    tools: list[Tool] = []
    try:
        tools = _tools(root)
        setups = {}
        for tool in tools:
            ports = _free_ports()
            setups[tool.name] = (_start(tool, ports), ports)
            for bucket in samples.values():
                bucket[tool.name] = []
        for _ in range(runs):  # interleaved: every round measures every tool
            for tool in tools:
                addresses, ports = setups[tool.name]
                _round(tool, addresses, ports, samples)
    except RuntimeError as exc:
        raise Skipped(f"cannot run the network benchmark here: {exc}") from exc
    finally:
        for tool in tools:
            subprocess.run([*tool.base, "rm", "-f", "bn-nc", "bn-web", "bn-client"], capture_output=True,
                           env=tool.env)
            if tool.name == "isobox":  # its default network stays up after the last workload
                subprocess.run([*tool.base, "network", "prune", "-f"], capture_output=True, env=tool.env)
        subprocess.run([*_podman(root), "system", "reset", "-f"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    for name in names:
        unit = "MB/s" if name.endswith("throughput") else "conn/s"
        report(summarize(f"network_{name}", samples[name], baseline="isobox", unit=unit))


if __name__ == "__main__":
    main()
