"""A crash harness: the `isobox` CLI killed with SIGKILL at random moments of run (container and VM), rm,
commit, save, load, pull and volume create. After every kill nothing may be invisible (every workload
directory, conmon, QEMU, mount, cgroup, veth and TAP belongs to a workload `ps -a` lists) and retrying the
operation must work; at the end `rm -f` and `system prune` must leave nothing at all.

Seeded: ISOBOX_CRASH_SEED=N repeats a run (the seed is printed, run pytest with -s to see it and the summary);
ISOBOX_CRASH_TRIALS=N sets the trials per operation (default 6, VMs 5). Each kill lands uniformly between
50 ms and the operation's own duration (measured once first), so most land inside the operation.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.fixtures import network as fx
from tests.integration.conftest import ISOBOX, Cli, processes_with
from tests.leaks import cgroup_ids, mounts_under

from fixtures import registry as registries

net_cli = fx.net_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

SEED = int(os.environ.get("ISOBOX_CRASH_SEED", str(time.time_ns() % 2**31)))
TRIALS = int(os.environ.get("ISOBOX_CRASH_TRIALS", "6"))
MIN_DELAY_S, MAX_DELAY_S = 0.05, 2.0
BIG = "localhost/crash-big:1"
YES = b"y\n"  # prunes may ask for confirmation: the answer is given on stdin


@dataclass
class Harness:
    cli: Cli
    operation: str
    rng: random.Random
    findings: list[str] = field(default_factory=list)
    killed_mid_way: int = 0
    completed: int = 0
    duration_s: float = 1.0

    def measure(self, argv: list[str], timeout_s: float = 300) -> None:
        """One uninterrupted run: how long the operation takes here (the kills land within it)."""
        started = time.monotonic()
        self.cli(*argv, check=True, timeout=timeout_s)
        self.duration_s = min(MAX_DELAY_S, max(0.2, time.monotonic() - started))

    def kill_during(self, argv: list[str]) -> float:
        """Start the CLI, SIGKILL it at a random moment; returns the moment chosen."""
        delay = self.rng.uniform(MIN_DELAY_S, max(MIN_DELAY_S + 0.05, 0.7 * self.duration_s))
        env = dict(os.environ, ISOBOX_ROOT=str(self.cli.root))
        proc = subprocess.Popen([*ISOBOX, *argv], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.stderr is not None
        if proc.returncode == -signal.SIGKILL:
            self.killed_mid_way += 1
        else:
            self.completed += 1
            if b"Traceback" in proc.stderr.read():
                self.findings.append(f"{self.operation}: a traceback from {argv}")
        time.sleep(0.3)  # what the killed CLI had started (ip, runc, mkfs …) ends on its own
        self._note_seen()
        return delay

    def _note_seen(self) -> None:
        workloads = self.cli.root / "lib" / "workloads"
        if workloads.is_dir():
            self.cli.seen.update(p.name for p in workloads.iterdir())

    def run(self, *argv: str, timeout_s: float = 300, input: bytes | None = None
            ) -> subprocess.CompletedProcess[str]:
        done = self.cli(*argv, timeout=timeout_s, input=input)
        if done.returncode != 0 or "Traceback" in done.stderr:
            self.findings.append(f"{self.operation}: `isobox {' '.join(argv)}` failed: {done.stderr.strip()}")
        return done

    def check_visible(self, when: str) -> list[str]:
        """Everything isobox made on the host belongs to a workload that `ps -a` lists; returns the ids."""
        listed = self.cli("ps", "-a", "--json")
        if listed.returncode != 0:
            self.findings.append(f"{when}: ps -a failed: {listed.stderr.strip()}")
            return []
        ids = [w["id"] for w in json.loads(listed.stdout)]
        workloads = self.cli.root / "lib" / "workloads"
        for directory in sorted(workloads.iterdir()) if workloads.is_dir() else []:
            if directory.name not in ids:
                self.findings.append(f"{when}: workload directory {directory.name} is not listed by ps -a")
        for proc in processes_with(str(self.cli.root)):
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue  # ended meanwhile
            owner = next((w for w in self.cli.seen if w.encode() in cmdline), None)
            if owner is not None and owner not in ids:
                program = cmdline.split(b"\0")[0].decode(errors="replace")
                self.findings.append(f"{when}: process {proc.name} ({program}) of unlisted workload {owner[:12]}")
        for mount in mounts_under(self.cli.root):
            if not any(i in mount for i in ids):
                self.findings.append(f"{when}: mount {mount} belongs to no listed workload")
        for cgroup in sorted(cgroup_ids(self.cli.seen)):
            if cgroup not in ids:
                self.findings.append(f"{when}: cgroup of unlisted workload {cgroup[:12]}")
        for link in _workload_links(self.cli.seen):
            if not any(link[2:12] == i[:10] for i in ids):
                self.findings.append(f"{when}: interface {link} belongs to no listed workload")
        return ids

    def check_nothing_left(self) -> None:
        """After rm -f of everything and prune: no trace of any workload, and no temporary file."""
        for short in self.cli("ps", "-a", "-q").stdout.split():
            self.run("rm", "-f", short)
        addresses = [e for n in fx.networks(self.cli) for e in n.get("endpoints", [])]  # type: ignore[union-attr]
        if addresses:
            self.findings.append(f"{self.operation}: addresses still held after rm -f of everything: {addresses}")
        self.run("system", "prune", "--volumes", input=YES)
        self.run("image", "prune", input=YES)
        root = self.cli.root
        leftovers = {
            "workload directories": [p.name for p in (root / "lib" / "workloads").iterdir()],
            "mounts": mounts_under(root),
            "cgroups": sorted(cgroup_ids(self.cli.seen)),
            "interfaces": sorted(_workload_links(self.cli.seen)),
            "processes": [p.name for p in processes_with(str(root))],
            "lib/tmp": [p.name for p in (root / "lib" / "tmp").iterdir()],
            "volumes": [p.name for p in (root / "lib" / "volumes").iterdir()] if (root / "lib" / "volumes")
            .is_dir() else [],
            "save files": [p.name for p in root.glob(".*.tmp-*")],
            "network namespaces": [p.name for p in (root / "run" / "netns").iterdir()]
            if (root / "run" / "netns").is_dir() else [],
            "workload locks": [p.name for p in (root / "run" / "locks").glob("workload-*")],
        }
        for what, found in leftovers.items():
            if found:
                self.findings.append(f"{self.operation}: after rm -f and prune, {what} remain: {found}")

    def report(self) -> None:
        print(f"crash harness ({self.operation}): seed {SEED}, {self.killed_mid_way + self.completed} trials, "
              f"{self.killed_mid_way} killed mid-way, {self.completed} had finished, {len(self.findings)} findings")
        for finding in self.findings:
            print(f"  {finding}")
        assert not self.findings, f"seed {SEED}: " + "; ".join(self.findings)


def _workload_links(seen: set[str]) -> set[str]:
    prefixes = {w[:10] for w in seen}
    return {link.name for link in Path("/sys/class/net").iterdir()
            if link.name.startswith(("iv", "it")) and link.name[2:12] in prefixes}


@pytest.fixture
def harness(net_cli: Cli, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Harness]]:
    made: list[Harness] = []

    def make(operation: str) -> Harness:
        rng = random.Random(f"{SEED}-{operation}")
        made.append(Harness(net_cli, operation, rng))
        return made[-1]

    yield make


def _big_image(h: Harness) -> None:
    """An image with a 40 MB layer of random data, so commit, save, load and pull take a while."""
    h.cli("run", "--name", "crash-src", "--network", "none", "busybox", "sh", "-c",
          "head -c 40000000 /dev/urandom > /data", check=True)
    h.cli("commit", "crash-src", BIG, check=True, timeout=300)


def test_run_of_a_container_killed_at_random_moments(harness: Callable[[str], Harness]) -> None:
    h = harness("run -d")
    h.measure(["run", "-d", "--name", "calibrate", "-v", "/anon", "busybox", "sleep", "300"])
    for trial in range(TRIALS):
        h.kill_during(["run", "-d", "--name", f"c{trial}", "-v", "/anon", "busybox", "sleep", "300"])
        h.check_visible(f"run -d, trial {trial}")
        if h.cli("inspect", f"c{trial}").returncode == 0:  # recorded (maybe half-made): rm -f finishes it
            h.run("rm", "-f", f"c{trial}")
        h.run("run", "-d", "--name", f"c{trial}", "-v", "/anon", "busybox", "sleep", "300")  # the retry
    h.check_nothing_left()
    h.report()


@pytest.mark.vm
def test_run_of_a_vm_killed_at_random_moments(harness: Callable[[str], Harness]) -> None:
    h = harness("run --vm -d")
    h.measure(["run", "--vm", "-d", "--name", "calibrate", "busybox", "sleep", "300"], timeout_s=600)
    h.run("rm", "-f", "calibrate")
    for trial in range(max(1, TRIALS - 1)):
        h.kill_during(["run", "--vm", "-d", "--name", f"v{trial}", "busybox", "sleep", "300"])
        h.check_visible(f"run --vm -d, trial {trial}")
        if h.cli("inspect", f"v{trial}").returncode == 0:
            h.run("rm", "-f", f"v{trial}")
        h.check_visible(f"run --vm -d, trial {trial}, after rm -f")
    h.run("run", "--vm", "-d", "--name", "retry", "busybox", "sleep", "300")
    h.check_nothing_left()
    h.report()


def test_rm_killed_at_random_moments(harness: Callable[[str], Harness]) -> None:
    h = harness("rm -f")
    h.cli("run", "-d", "--name", "calibrate", "-v", "/anon", "busybox", "sleep", "300", check=True)
    h.measure(["rm", "-f", "calibrate"])
    for trial in range(TRIALS):
        h.cli("run", "-d", "--name", f"r{trial}", "-v", "/anon", "busybox", "sleep", "300", check=True)
        h.kill_during(["rm", "-f", f"r{trial}"])
        h.check_visible(f"rm -f, trial {trial}")
        if h.cli("inspect", f"r{trial}").returncode == 0:
            h.run("rm", "-f", f"r{trial}")  # the retry finishes it
        if h.cli("inspect", f"r{trial}").returncode == 0:
            h.findings.append(f"rm -f, trial {trial}: still there after the retry")
    h.check_nothing_left()
    h.report()


def test_commit_killed_at_random_moments(harness: Callable[[str], Harness]) -> None:
    h = harness("commit")
    _big_image(h)
    h.measure(["commit", "crash-src", "localhost/calibrate:1"])
    for trial in range(TRIALS):
        h.kill_during(["commit", "crash-src", f"localhost/commit:{trial}"])
        h.check_visible(f"commit, trial {trial}")
        h.run("commit", "crash-src", f"localhost/commit:{trial}")
        h.run("image", "inspect", f"localhost/commit:{trial}")
    h.check_nothing_left()
    h.report()


def test_save_killed_at_random_moments(harness: Callable[[str], Harness], tmp_path: Path) -> None:
    h = harness("save")
    _big_image(h)
    target = h.cli.root / "saved.tar"  # beside the root: the fixtures remove it with the root
    h.measure(["save", "-o", str(target), BIG])
    for trial in range(TRIALS):
        h.kill_during(["save", "-o", str(target), BIG])
        h.check_visible(f"save, trial {trial}")
        h.run("save", "-o", str(target), BIG)  # the retry, which also removes what the killed one left
        left = [p.name for p in target.parent.glob(f".{target.name}.tmp-*")]
        if left:
            h.findings.append(f"save, trial {trial}: {left} outlived the next save")
    h.kill_during(["save", "-o", str(target), BIG])  # and the last one: prune removes what it leaves
    h.check_nothing_left()
    h.report()


def test_load_killed_at_random_moments(harness: Callable[[str], Harness], tmp_path: Path) -> None:
    h = harness("load")
    _big_image(h)
    archive = tmp_path / "big.tar"
    h.cli("save", "-o", str(archive), BIG, check=True)
    h.cli("rm", "-f", "crash-src", check=True)
    h.cli("rmi", BIG, check=True)
    h.measure(["load", "-i", str(archive)])
    for trial in range(TRIALS):
        h.cli("rmi", BIG)
        h.kill_during(["load", "-i", str(archive)])
        h.check_visible(f"load, trial {trial}")
        h.run("load", "-i", str(archive))
        h.run("image", "inspect", BIG)
    h.cli("rmi", BIG)
    h.kill_during(["load", "-i", str(archive)])
    h.check_nothing_left()
    h.report()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        server.stop()


def test_pull_killed_at_random_moments(harness: Callable[[str], Harness], registry: registries.Registry) -> None:
    h = harness("pull")
    _big_image(h)
    remote = f"{registry.host}/crash/big:1"
    h.cli("push", "--insecure", BIG, remote, check=True, timeout=300)
    h.cli("rm", "-f", "crash-src", check=True)
    h.cli("rmi", BIG, check=True)
    h.cli("image", "prune", input=YES, check=True)
    h.measure(["pull", "--insecure", remote])
    for trial in range(TRIALS):
        h.cli("rmi", remote)
        h.cli("image", "prune", input=YES)
        h.kill_during(["pull", "--insecure", remote])
        h.check_visible(f"pull, trial {trial}")
        h.run("pull", "--insecure", remote)
        h.run("image", "inspect", remote)
    h.cli("rmi", remote)
    h.kill_during(["pull", "--insecure", remote])
    h.check_nothing_left()
    h.report()


def test_volume_create_killed_at_random_moments(harness: Callable[[str], Harness]) -> None:
    h = harness("volume create")
    h.measure(["volume", "create", "--opt", "type=disk", "--opt", "size=256m", "calibrate"])
    for trial in range(TRIALS):
        options = ["--opt", "type=disk", "--opt", "size=256m"] if trial % 2 == 0 else []
        h.kill_during(["volume", "create", *options, f"vol{trial}"])
        h.check_visible(f"volume create, trial {trial}")
        h.run("volume", "create", *options, f"vol{trial}")  # the retry
        listed = h.cli("volume", "ls", "--json").stdout
        if f'"vol{trial}"' not in listed:
            h.findings.append(f"volume create, trial {trial}: vol{trial} not listed after the retry")
    h.kill_during(["volume", "create", "last"])
    h.check_nothing_left()
    h.report()


def test_the_harness_sees_what_is_left_behind(harness: Callable[[str], Harness]) -> None:
    """The checks themselves: a workload directory without a record, and a mount of nobody's, are findings."""
    h = harness("self-check")
    h.cli("run", "-d", "--name", "real", "busybox", "sleep", "300", check=True)
    stray = h.cli.root / "lib" / "workloads" / ("e" * 64)
    stray.mkdir()
    mounted = h.cli.root / "stray-mount"
    mounted.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mounted)], check=True)
    try:
        h.check_visible("self-check")
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
        stray.rmdir()
    assert any("workload directory eeee" in f for f in h.findings), h.findings
    assert any("stray-mount" in f for f in h.findings), h.findings
    h.findings.clear()
    h.check_visible("self-check, cleaned")
    assert h.findings == []
