"""Real containers (runc or crun + conmon) from the built-in busybox image, through the isobox command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.integration.conftest import ISOBOX, Cli, processes_with

pytestmark = pytest.mark.integration


def test_foreground_output_and_exit_code(cli: Cli) -> None:
    done = cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (done.returncode, done.stdout, done.stderr) == (7, "out\n", "err\n")
    assert cli("ps", "-a", "-q").stdout.strip() == ""


def test_rm_leaves_nothing(cli: Cli, isobox_root: Path) -> None:
    cli("run", "--rm", "--name", "gone", "busybox", "true", check=True)
    assert list((isobox_root / "lib" / "workloads").iterdir()) == []
    assert not list((isobox_root / "run" / "oci").glob("*/state.json"))


def test_env_workdir_user_hostname(cli: Cli) -> None:
    done = cli(
        "run",
        "--rm",
        "-e",
        "GREETING=hi there",
        "-w",
        "/tmp/new",
        "-u",
        "nobody",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        'echo "$GREETING|$(pwd)|$(id -u):$(id -g)|$(hostname)|$HOME"',
    )
    assert done.stdout == "hi there|/tmp/new|65534:65534|box|/nonexistent\n", done.stderr


def test_env_file_and_entrypoint(cli: Cli, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nA=from-file\n")
    done = cli("run", "--rm", "--env-file", str(env_file), "--entrypoint", "/bin/echo", "busybox", "x", "y")
    assert done.stdout == "x y\n"
    done = cli("run", "--rm", "--env-file", str(env_file), "busybox", "sh", "-c", "echo $A")
    assert done.stdout == "from-file\n"


def test_detached_logs_exec_stop_rm(cli: Cli) -> None:
    cid = cli(
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        check=True,
    ).stdout.strip()
    assert len(cid) == 64
    time.sleep(0.7)
    assert "ticker" in cli("ps").stdout
    logs = cli("logs", "ticker").stdout.splitlines()
    assert logs[:2] == ["tick 0", "tick 1"]
    assert cli("logs", "--tail", "1", "ticker").stdout.count("\n") == 1
    assert cli("logs", "-t", "ticker").stdout.split(" ", 1)[0].startswith("20")
    done = cli("exec", "ticker", "sh", "-c", "echo inside; exit 3")
    assert (done.returncode, done.stdout) == (3, "inside\n")
    start = time.monotonic()
    cli("stop", "-t", "10", "ticker", check=True)
    assert time.monotonic() - start < 5, "the TERM trap should end it well before the timeout"
    info = json.loads(cli("inspect", "ticker").stdout)[0]
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
    assert cli("logs", "--tail", "1", "ticker").stdout == "bye\n"
    assert cli("rm", "ticker").returncode == 0
    assert "No such object: ticker" in cli("inspect", "ticker").stderr


def test_stop_escalates_to_sigkill(cli: Cli) -> None:
    cli("run", "-d", "--name", "stubborn", "busybox", "sh", "-c", "trap '' TERM; sleep 60", check=True)
    time.sleep(0.3)
    cli("stop", "-t", "1", "stubborn", check=True)
    assert json.loads(cli("inspect", "stubborn").stdout)[0]["State"]["ExitCode"] == 137


def test_kill_with_signal_and_wait(cli: Cli) -> None:
    # pid 1 ignores signals it has no handler for, so the workload installs one.
    cli(
        "run",
        "-d",
        "--name",
        "k",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 143' TERM; while true; do sleep 0.1; done",
        check=True,
    )
    time.sleep(0.3)
    cli("kill", "-s", "TERM", "k", check=True)
    assert cli("wait", "k").stdout.strip() == "143"


def test_exit_code_recorded_without_isobox_running(cli: Cli) -> None:
    """conmon records the exit; a later, separate isobox process reads the truth."""
    cli("run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 0.5; exit 42", check=True)
    time.sleep(1.5)
    listing = json.loads(cli("ps", "-a", "--json").stdout)
    assert [(w["name"], w["status"], w["exit_code"]) for w in listing] == [("short", "exited", 42)]


def test_create_start_restart(cli: Cli) -> None:
    cli("create", "--name", "c1", "busybox", "sh", "-c", "echo run", check=True)
    assert json.loads(cli("inspect", "c1").stdout)[0]["State"]["Status"] == "created"
    done = cli("start", "-a", "c1")
    assert (done.returncode, done.stdout) == (0, "run\n")
    cli("start", "c1", check=True)
    cli("wait", "c1", check=True)
    assert cli("logs", "c1").stdout == "run\nrun\n"


def test_name_conflict_and_bad_input_are_clear(cli: Cli) -> None:
    cli("create", "--name", "dup", "busybox", "true", check=True)
    done = cli("create", "--name", "dup", "busybox", "true")
    assert done.returncode == 125 and "already in use" in done.stderr
    done = cli("run", "--rm", "-w", "/proc/self/fd/3", "busybox", "true")
    assert done.returncode == 125 and "inside /proc" in done.stderr
    done = cli("run", "--rm", "--memory", "lots", "busybox", "true")
    assert done.returncode == 125 and "invalid memory" in done.stderr
    done = cli("run", "--rm", "-u", "ghost", "busybox", "true")
    assert done.returncode == 125 and "ghost" in done.stderr
    done = cli("run", "--rm", "busybox", "/no/such/binary")
    assert done.returncode != 0


def test_read_only_rootfs_and_init(cli: Cli) -> None:
    done = cli("run", "--rm", "--read-only", "busybox", "sh", "-c", "touch /x 2>/dev/null && echo wrote || echo ro")
    assert done.stdout == "ro\n"
    if Path("/usr/bin/tini-static").exists():
        done = cli("run", "--rm", "--init", "busybox", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline")
        assert done.stdout.startswith("/dev/init -- sh -c"), done.stdout


def test_tty_allocates_a_terminal(cli: Cli) -> None:
    done = cli("run", "--rm", "-t", "busybox", "sh", "-c", "tty")
    assert done.stdout.strip().startswith("/dev/pts/")


def test_interactive_stdin(cli: Cli) -> None:
    done = cli("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z", input=b"hello\n")
    assert done.stdout == "HELLO\n"


def test_rm_force_running(cli: Cli, isobox_root: Path) -> None:
    cli("run", "-d", "--name", "busy", "busybox", "sleep", "60", check=True)
    done = cli("rm", "busy")
    assert done.returncode == 1 and "running" in done.stderr
    cli("rm", "-f", "busy", check=True)
    assert list((isobox_root / "lib" / "workloads").iterdir()) == []


def test_restart_policy_on_failure(cli: Cli) -> None:
    cli(
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo attempt; exit 1",
        check=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = json.loads(cli("inspect", "flaky").stdout)[0]
        if info["RestartCount"] == 2 and info["State"]["Status"] == "exited":
            break
        time.sleep(0.3)
    assert info["RestartCount"] == 2 and info["State"]["ExitCode"] == 1
    assert cli("logs", "flaky").stdout.count("attempt") == 3


def test_system_boot_starts_always_workloads_after_a_host_restart(cli: Cli) -> None:
    """What a host restart leaves: monitors and processes gone without a word (no exit recorded, no
    restart run). `system boot` (the systemd unit's command) starts the `always` ones again, and only them."""
    cli("run", "-d", "--restart", "always", "--name", "svc", "busybox", "sh", "-c", "echo up; sleep 600", check=True)
    cli("run", "-d", "--name", "plain", "busybox", "sleep", "600", check=True)
    cli("run", "-d", "--restart", "always", "--network", "none", "--name", "quiet", "busybox", "sleep", "600",
        check=True)
    for name in ("svc", "plain", "quiet"):
        info = json.loads(cli("inspect", name, check=True).stdout)[0]
        for monitor in processes_with(info["Id"]):  # conmon first: it must not see the exit
            if (monitor / "comm").read_text().strip() == "conmon":
                os.kill(int(monitor.name), signal.SIGKILL)
        os.kill(info["State"]["Pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and cli("ps", "-q").stdout.strip():
        time.sleep(0.2)
    assert cli("ps", "-q").stdout.strip() == "", "all three are seen as exited"
    booted = cli("system", "boot", check=True)
    assert booted.stdout.split() == ["svc", "quiet"]
    assert sorted(w["name"] for w in json.loads(cli("ps", "--json", check=True).stdout)) == ["quiet", "svc"]
    assert cli("logs", "svc", check=True).stdout.count("up") == 2
    assert cli("system", "boot", check=True).stdout.strip() == "", "running ones are left alone"


COUNTER = 'i=0; while :; do i=$((i+1)); echo "$i"; sleep 0.1; done'


def last_count(cli: Cli, name: str) -> int:
    return int(cli("logs", "--tail", "1", name, check=True).stdout.split()[-1])


def status_of(cli: Cli, name: str) -> str:
    return str(json.loads(cli("inspect", name, check=True).stdout)[0]["State"]["Status"])


def test_pause_freezes_and_unpause_resumes(cli: Cli) -> None:
    cli("run", "-d", "--name", "ticker", "busybox", "sh", "-c", COUNTER, check=True)
    time.sleep(0.5)
    assert cli("pause", "ticker", check=True).stdout.strip() == "ticker"
    assert status_of(cli, "ticker") == "paused"
    frozen = last_count(cli, "ticker")
    time.sleep(0.8)
    assert last_count(cli, "ticker") == frozen, "no process of a paused container runs"
    refused = cli("exec", "ticker", "true")
    assert refused.returncode == 125 and "paused" in refused.stderr
    assert cli("pause", "ticker").returncode == 1  # already paused (Docker: 1 for a workload that fails)
    cli("unpause", "ticker", check=True)
    assert status_of(cli, "ticker") == "running"
    time.sleep(0.8)
    assert last_count(cli, "ticker") > frozen
    # stop of a paused container resumes it first: SIGTERM, then SIGKILL after -t, not a hang.
    cli("pause", "ticker", check=True)
    cli("stop", "-t", "1", "ticker", check=True, timeout=30)
    assert status_of(cli, "ticker") == "exited"
    assert cli("unpause", "ticker").returncode == 1


def test_attach_follows_output_and_passes_stdin_on(cli: Cli) -> None:
    script = "for i in 1 2 3 4 5; do echo tick$i; sleep 0.4; done; exit 4"
    cli("run", "-d", "--name", "ticks", "busybox", "sh", "-c", script, check=True)
    time.sleep(0.6)
    attached = cli("attach", "ticks", timeout=30)
    assert attached.returncode == 4
    assert "tick5" in attached.stdout and "tick1" not in attached.stdout, "output from now on, as Docker's"
    # -i keeps stdin open while detached; attach passes it on.
    cli("run", "-d", "-i", "--name", "reader", "busybox", "sh", "-c", "read x; echo got-$x; exit 3", check=True)
    answered = cli("attach", "reader", input=b"hello\n", timeout=30)
    assert (answered.returncode, answered.stdout) == (3, "got-hello\n")
    assert cli("attach", "reader").returncode == 125  # exited: nothing to attach to


def test_signals_to_a_foreground_run_reach_the_workload(cli: Cli) -> None:
    """Docker's --sig-proxy, for an unnamed run too (among other workloads): SIGINT to isobox is the
    workload's SIGINT."""
    cli("run", "-d", "--network", "none", "--name", "bystander", "busybox", "sleep", "60", check=True)
    script = 'trap "echo caught; exit 42" INT; sleep 30 & wait'
    run = subprocess.Popen([*ISOBOX, "run", "--network", "none", "busybox", "sh", "-c", script],
                           env=dict(os.environ, ISOBOX_ROOT=str(cli.root)), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(json.loads(cli("ps", "--json", check=True).stdout)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the shell has set its trap
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=20)
    assert (run.returncode, out) == (42, "caught\n")


def test_detached_rm_removes_itself(cli: Cli) -> None:
    cli("run", "-d", "--rm", "--name", "ephemeral", "busybox", "true", check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "ephemeral" in cli("ps", "-a").stdout:
        time.sleep(0.2)
    assert "ephemeral" not in cli("ps", "-a").stdout


def test_top_and_stats(cli: Cli) -> None:
    cli("run", "-d", "--name", "s", "--memory", "64m", "busybox", "sleep", "60", check=True)
    assert "sleep 60" in cli("top", "s").stdout
    stats = json.loads(cli("stats", "--json", "s").stdout)[0]
    assert stats["memory_limit_bytes"] == 64 * 1024 * 1024 and stats["pids"] == 1
