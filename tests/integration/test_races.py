"""Races through the real CLI: many `isobox run` at once for one name (exactly one wins; the others fail with
Docker's conflict message and leave nothing on the host), `--userns auto` ranges handed out sequentially
and concurrently (pairwise distinct, checked in /proc/PID/uid_map), and a workload whose conmon was killed
(reported promptly with an exit code, restarted by its policy)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.fixtures import network as fx
from tests.integration.conftest import ISOBOX, Cli, processes_with
from tests.leaks import cgroup_ids, mounts_under

net_cli = fx.net_cli

pytestmark = pytest.mark.integration

ROUNDS = int(os.environ.get("ISOBOX_RACE_ROUNDS", "5"))
RACERS = 8


def _at_once(cli: Cli, argvs: list[list[str]], timeout_s: float = 120) -> list[subprocess.CompletedProcess[str]]:
    env = dict(os.environ, ISOBOX_ROOT=str(cli.root))
    procs = [subprocess.Popen([*ISOBOX, *argv], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for argv in argvs]
    done = []
    for proc, argv in zip(procs, argvs, strict=True):
        out, err = proc.communicate(timeout=timeout_s)
        done.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    workloads = cli.root / "lib" / "workloads"
    if workloads.is_dir():
        cli.seen.update(p.name for p in workloads.iterdir())
    return done


def _links() -> set[str]:
    return {link.name for link in Path("/sys/class/net").iterdir()}


def _host_state(cli: Cli) -> dict[str, object]:
    """What isobox can have made on the host for this root: conmon processes, mounts, cgroups, links,
    addresses on its networks, firewall rules."""
    endpoints = [e for n in fx.networks(cli) for e in n.get("endpoints", [])]  # type: ignore[union-attr]
    table = fx.table_of(cli)
    rules = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True).stdout
    return {
        "conmon": sorted(p.name for p in processes_with(str(cli.root)) if b"conmon" in (p / "comm").read_bytes()),
        "mounts": sorted(mounts_under(cli.root)),
        "cgroups": sorted(cgroup_ids(cli.seen)),
        "links": sorted(link for link in _links() if link.startswith(("iv", "it"))
                        and any(link[2:12] == w[:10] for w in cli.seen)),
        "addresses": sorted(str(e.get("ip")) for e in endpoints),  # type: ignore[union-attr]
        "rules": rules,
    }


def test_one_name_many_runs_exactly_one_wins_and_losers_leave_nothing(net_cli: Cli) -> None:
    cli = net_cli
    cli("run", "--rm", "busybox", "true", check=True)  # the image and the default network exist beforehand
    baseline = _host_state(cli)
    for round_ in range(ROUNDS):
        results = _at_once(cli, [["run", "-d", "--name", "same", "busybox", "sleep", "120"]] * RACERS)
        won = [r for r in results if r.returncode == 0]
        lost = [r for r in results if r.returncode != 0]
        assert len(won) == 1, (round_, [(r.returncode, r.stderr) for r in results])
        winner = won[0].stdout.strip()
        for loser in lost:
            assert loser.returncode == 125, loser.stderr
            assert 'Conflict. The container name "/same" is already in use by container "' in loser.stderr
            assert "Traceback" not in loser.stderr
        listed = json.loads(cli("ps", "-a", "--json", check=True).stdout)
        assert [w["id"] for w in listed] == [winner], listed
        state = _host_state(cli)
        assert len(state["conmon"]) == 1 and len(state["addresses"]) == 1, state  # type: ignore[arg-type]
        assert all(winner[:10] in m for m in state["mounts"]), state["mounts"]  # type: ignore[attr-defined]
        assert state["cgroups"] == [winner], state["cgroups"]
        assert all(link[2:12] == winner[:10] for link in state["links"]), state["links"]  # type: ignore[attr-defined]
        assert (cli.root / "lib" / "workloads").is_dir() and [p.name for p in (cli.root / "lib" / "workloads")
                                                              .iterdir()] == [winner]
        cli("rm", "-f", "same", check=True)
        assert fx.links_gone([f"iv{winner[:10]}"]), "the winner's veth stayed after rm -f"
        assert _host_state(cli) == baseline, f"round {round_}: something stayed after rm -f"
    assert [p.name for p in (cli.root / "run" / "locks").glob("workload-*")] == [], "lock files gathered"


def _uid_base(cli: Cli, name: str) -> int:
    pid = json.loads(cli("inspect", name, check=True).stdout)[0]["State"]["Pid"]
    fields = Path(f"/proc/{pid}/uid_map").read_text().split()
    assert fields[0] == "0" and fields[2] == "65536", fields
    return int(fields[1])


def test_userns_auto_ranges_are_distinct_sequentially_and_concurrently(cli: Cli) -> None:
    count = 17  # beyond 16: the old filter broke from the 17th on
    cli("run", "--rm", "busybox", "true", check=True)
    for index in range(count):
        cli("run", "-d", "--userns", "auto", "--network", "none", "--name", f"seq{index}", "busybox", "sleep",
            "300", check=True)
    results = _at_once(cli, [["run", "-d", "--userns", "auto", "--network", "none", "--name", f"par{index}",
                              "busybox", "sleep", "300"] for index in range(count)])
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    names = [f"seq{i}" for i in range(count)] + [f"par{i}" for i in range(count)]
    bases = {name: _uid_base(cli, name) for name in names}
    assert len(set(bases.values())) == len(names), bases
    ordered = sorted(bases.values())
    assert all(b - a >= 65536 for a, b in itertools.pairwise(ordered)), "ranges overlap"


def test_a_killed_conmon_is_reported_promptly_and_restarted_by_policy(cli: Cli) -> None:
    workload = cli("run", "-d", "--name", "orphan", "--network", "none", "busybox", "sleep", "300",
                   check=True).stdout.strip()
    conmon_pid = int((cli.root / "lib" / "workloads" / workload / "conmon.pid").read_text())
    os.kill(conmon_pid, signal.SIGKILL)
    started = time.monotonic()
    stopped = cli("stop", "-t", "1", "orphan", check=True)
    assert time.monotonic() - started < 5, "stop waited for a conmon that is gone"
    assert "Traceback" not in stopped.stderr
    state = json.loads(cli("inspect", "orphan", check=True).stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] in (137, 143, 255), state
    assert "Exited (None)" not in cli("ps", "-a", check=True).stdout
    assert cli("wait", "orphan", timeout=10, check=True).stdout.strip() == str(state["ExitCode"])

    # With a restart policy: the process ends while its conmon is gone; nobody ran the exit command, so
    # the exits task (the engine's; here its pass run directly) and `system boot` restart it.
    workload = cli("run", "-d", "--name", "keeper", "--network", "none", "--restart", "on-failure", "busybox",
                   "sh", "-c", "sleep 2; exit 3", check=True).stdout.strip()
    os.kill(int((cli.root / "lib" / "workloads" / workload / "conmon.pid").read_text()), signal.SIGKILL)
    time.sleep(3)
    listed = {w["name"]: w for w in json.loads(cli("ps", "-a", "--json", check=True).stdout)}
    assert listed["keeper"]["status"] == "exited" and listed["keeper"]["exit_code"] == 255, listed["keeper"]
    booted = cli("system", "boot", check=True).stdout.split()
    assert booted == ["keeper"], booted
    state = json.loads(cli("inspect", "keeper", check=True).stdout)[0]["State"]
    assert state["Status"] == "running", state


def test_restarts_back_off_with_the_real_monitor(cli: Cli) -> None:
    """conmon's exit command waits Docker's back-off: a command failing at once restarts a handful of times in
    4 s (0.1 + 0.2 + 0.4 + 0.8 + 1.6 s), not every second forever; stop ends it."""
    cli("run", "-d", "--name", "flaky", "--network", "none", "--restart", "always", "busybox", "sh", "-c",
        "exit 3", check=True)
    time.sleep(4)
    record = json.loads(cli("inspect", "flaky", check=True).stdout)[0]
    assert 3 <= record["RestartCount"] <= 7, record["RestartCount"]
    assert record["Isobox"]["RestartDelaySeconds"] == 0.1 * 2 ** (record["RestartCount"] - 1), record
    cli("stop", "-t", "1", "flaky", check=True)
    count = json.loads(cli("inspect", "flaky", check=True).stdout)[0]["RestartCount"]
    time.sleep(3)
    assert json.loads(cli("inspect", "flaky", check=True).stdout)[0]["RestartCount"] == count
