"""Logs are kept whole by default (no silent 16 MiB cut), rotate by `--log-opt max-size/max-file` without losing
a line (read and followed across the rotated files), for containers and VMs; and limits that mean nothing or
exceed the host are refused with Docker's words before anything is made."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from tests.integration.conftest import ISOBOX, Cli

pytestmark = pytest.mark.integration

LINE = "x" * 90


def _numbers(text: str) -> list[int]:
    return [int(line.split()[0]) for line in text.splitlines() if line.strip()]


def _log_files(cli: Cli, name: str) -> list[Path]:
    workload = cli("inspect", "--format", "{{.Id}}", name).stdout.strip() or _id_of(cli, name)
    return sorted((cli.root / "lib" / "workloads" / workload).glob("output.log*"))


def _id_of(cli: Cli, name: str) -> str:
    import json

    return str(json.loads(cli("inspect", name, check=True).stdout)[0]["id"])


def test_a_big_log_is_kept_whole_by_default(cli: Cli) -> None:
    lines = 250_000  # 23 MB of output, a 34 MB log: beyond the 16 MiB conmon used to cut silently
    cli("run", "--name", "loud", "--network", "none", "busybox", "sh", "-c",
        f"seq 1 {lines} | sed 's/$/ {LINE}/'", check=True, timeout=300)
    assert [p.name for p in _log_files(cli, "loud")] == ["output.log"]
    assert (_log_files(cli, "loud")[0]).stat().st_size > 16 * 1024 * 1024
    out = cli("logs", "loud", check=True, timeout=300).stdout
    assert _numbers(out) == list(range(1, lines + 1))


def test_rotation_by_max_size_loses_no_line_and_keeps_max_file_files(cli: Cli) -> None:
    env = dict(os.environ, ISOBOX_ROOT=str(cli.root))
    rotator = subprocess.Popen([*ISOBOX, "system", "rotate-logs", "--every", "0.05"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Lines arrive over a few seconds while the log is renamed and reopened under the writer many times.
        script = f"i=1; while [ $i -le 40000 ]; do echo \"$i {LINE}\"; i=$((i+1)); " \
                 "[ $((i % 2000)) = 0 ] && usleep 100000; done; echo end"
        cli("run", "-d", "--name", "kept", "--network", "none", "--log-opt", "max-size=200k", "--log-opt",
            "max-file=100", "busybox", "sh", "-c", script, check=True)
        cli("run", "-d", "--name", "capped", "--network", "none", "--log-opt", "max-size=200k", "--log-opt",
            "max-file=3", "busybox", "sh", "-c", script, check=True)
        follower = _Follower(cli, "kept")
        assert cli("wait", "kept", timeout=120, check=True).stdout.strip() == "0"
        cli("wait", "capped", timeout=120, check=True)
        cli("system", "rotate-logs", check=True)
        follower.join()
    finally:
        rotator.kill()
        rotator.wait()
    assert rotator.stderr is not None and b"Traceback" not in rotator.stderr.read()
    kept_files = _log_files(cli, "kept")
    assert len(kept_files) > 10, kept_files  # it did rotate, many times
    everything = cli("logs", "kept", check=True).stdout
    assert _numbers(everything.replace("end", "")) == list(range(1, 40001)) and everything.endswith("end\n")
    if follower.lines != everything.splitlines():
        seen, wanted = follower.lines, everything.splitlines()
        missing = sorted(set(wanted) - set(seen), key=wanted.index)
        first = next(i for i, (a, b) in enumerate(zip(seen, wanted, strict=False)) if a != b)
        raise AssertionError(f"logs -f lost or repeated lines across rotations: {len(seen)} lines seen of "
                             f"{len(wanted)}, {len(missing)} missing (first {missing[:1]}), first difference at "
                             f"{first}: {seen[first - 1:first + 2]}")
    capped_files = _log_files(cli, "capped")
    assert len(capped_files) <= 3 and all(p.stat().st_size < 400 * 1024 for p in capped_files), capped_files
    tail = _numbers(cli("logs", "capped", check=True).stdout.replace("end", ""))
    assert tail and tail[-1] == 40000 and tail == list(range(tail[0], 40001)), "a gap in what max-file kept"
    assert cli("logs", "--tail", "2", "capped", check=True).stdout == f"40000 {LINE}\nend\n"


class _Follower(threading.Thread):
    """`isobox logs -f` from the start, collecting lines until the workload ends."""

    def __init__(self, cli: Cli, name: str) -> None:
        super().__init__()
        self.cli, self.name, self.lines = cli, name, list[str]()
        self.start()

    def run(self) -> None:
        done = self.cli("logs", "-f", self.name, timeout=180)
        self.lines = done.stdout.splitlines()


@pytest.mark.vm
def test_a_vms_log_rotates_by_the_same_rule(cli: Cli) -> None:
    cli("run", "--vm", "--name", "vlog", "--log-opt", "max-size=20k", "--log-opt", "max-file=2", "busybox",
        "sh", "-c", f"seq 1 3000 | sed 's/$/ {LINE}/'", check=True, timeout=300)
    out = _numbers(cli("logs", "vlog", check=True).stdout)
    files = _log_files(cli, "vlog")
    assert 1 <= len(files) <= 2 and out[-1] == 3000 and out == list(range(out[0], 3001)), (files, out[:3])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cpus", "nan"], "invalid --cpus nan"),
        (["--cpus", "inf"], "invalid --cpus inf"),
        (["--cpus", "-1"], "invalid --cpus -1"),
        (["--cpus", "0"], "the range of CPUs is from 0.01"),
        (["--cpus", "1000"], f"range of CPUs is from 0.01 to {len(os.sched_getaffinity(0))}.00, as there are only"),
        (["--cpuset-cpus", "99"], "requested CPUs are not available - requested 99"),
        (["--memory", "1k"], "minimum memory limit allowed is 6MB"),
        (["--pids-limit", "0"], "--pids-limit 0"),
        (["--log-opt", "compress=true"], "unknown log opt 'compress'"),
        (["--log-opt", "max-file=3"], "max-file needs max-size"),
    ],
)
def test_meaningless_limits_are_refused_and_leave_nothing(cli: Cli, flags: list[str], message: str) -> None:
    done = cli("run", "--name", "bad", *flags, "busybox", "true")
    assert done.returncode == 125 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert cli("ps", "-a", "-q", check=True).stdout == ""
    workloads = cli.root / "lib" / "workloads"
    assert not workloads.is_dir() or list(workloads.iterdir()) == []


def test_minus_one_pids_is_unlimited_as_dockers(cli: Cli) -> None:
    cli("run", "--rm", "--pids-limit", "-1", "--network", "none", "busybox", "true", check=True)


def test_an_overlong_repository_name_is_refused_before_any_registry(cli: Cli) -> None:
    done = cli("run", "a" * 300, timeout=10)
    assert done.returncode == 125 and "must not be more than 255 characters" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    pulled = cli("pull", "registry.invalid/" + "b" * 250 + ":1", timeout=10)
    assert pulled.returncode == 125 and "255 characters" in pulled.stderr, pulled.stderr
