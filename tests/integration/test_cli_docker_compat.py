"""The CLI compatibility table: each Docker invocation a Docker user tried on isobox (issue 21's list), run
against a container and against a VM, with the output shape (a regular expression over stdout, or over
stderr for an error) and the exit code Docker's CLI gives. Run in order on one root, as a session would."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration

ID12 = r"[0-9a-f]{12}"


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int = 0
    stdout: str = ""  # a regular expression the whole of stdout must match (re.fullmatch, DOTALL)
    stderr: str = ""  # a regular expression stderr must contain (re.search)
    stdin: bytes | None = None


def case(*args: str, code: int = 0, stdout: str = "", stderr: str = "", stdin: bytes | None = None) -> Case:
    return Case(args, code, stdout, stderr, stdin)


def table(kind: tuple[str, ...], name: str) -> list[Case]:
    """The invocations, for a workload NAME of the kind KIND (() for a container, ("--vm",) for a VM)."""
    header = r"CONTAINER ID +KIND +IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES\n"
    return [
        case("run", "--rm", *kind, "busybox", "sh", "-c", "echo out; exit 7", code=7, stdout="out\n"),
        case("run", "--rm", *kind, "busybox", "no-such-command", code=127,
             stderr=r'exec: "no-such-command": executable file not found in \$PATH'),
        case("run", "--rm", *kind, "busybox", "/etc/passwd", code=126, stderr="permission denied"),
        case("run", "--rm", *kind, "--bogus-flag", "busybox", code=125, stderr="No such option: --bogus-flag"),
        case("run", "-d", *kind, "--name", name, "-l", "app=compat", "-p", "127.0.0.1:18080:80", "busybox",
             "sleep", "600", stdout=r"[0-9a-f]{64}\n"),
        case("ps", "-a", stdout=header + ID12 + rf" +(container|vm) +busybox +\"sleep 600\" +.+ +Up .+ +"
             rf"127\.0\.0\.1:18080->80/tcp +{name}\n"),
        case("ps", "-q", stdout=ID12 + "\n"),
        case("ps", "--no-trunc", "-q", stdout="[0-9a-f]{64}\n"),
        case("ps", "--filter", "label=app=compat", "--format", "{{.Names}}\t{{.Status}}",
             stdout=rf"{name}\tUp .+\n"),
        case("ps", "--format", "table {{.Names}}\t{{.Ports}}",
             stdout=rf"NAMES +PORTS\n{name} +127.0.0.1:18080->80/tcp\n"),
        case("inspect", "-f", "{{.State.Status}}", name, stdout="running\n"),
        case("inspect", "-f", "{{json .Config.Cmd}}", name, stdout=r'\["sleep","600"\]\n'),
        case("inspect", "-f", "{{.Isobox.Kind}}", name, stdout=("vm" if kind else "container") + "\n"),
        case("port", name, stdout="80/tcp -> 127.0.0.1:18080\n"),
        # a VM's processes come from its guest's busybox ps: PID USER TIME COMMAND
        case("top", name, stdout=r"(UID +PID +PPID +C +STIME +TTY +TIME +CMD|PID +USER +TIME +COMMAND)\n.*sleep 600.*"),
        case("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", name, stdout=rf"{name} \S+ / \S+\n"),
        case("exec", name, "sh", "-c", "exit 3", code=3),
        case("rename", name, f"{name}2"),
        case("pause", f"{name}2", stdout=f"{name}2\n"),
        case("unpause", f"{name}2", stdout=f"{name}2\n"),
        case("stop", "-t", "1", f"{name}2", stdout=f"{name}2\n"),
        case("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}", stdout=f"{name}2\n"),
        case("rm", f"{name}2", "missing", code=1, stdout=f"{name}2\n", stderr="missing"),
        case("inspect", "missing", code=1, stdout=r"\[\]\n", stderr="No such object: missing"),
        case("container", "ls", "-a", "-q", stdout=""),
        case("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", stdout="busybox:latest\n"),
        case("images", "-q", stdout=ID12 + "\n"),
        case("network", "ls", "-q", stdout=ID12 + "\n"),
        case("volume", "ls", "-q", stdout=""),
        case("system", "df", stdout=r"TYPE +TOTAL +ACTIVE +SIZE +RECLAIMABLE\nImages .*"),
        case("system", "prune", stdin=b"n\n", stderr=r"Are you sure you want to continue\? \[y/N\]"),
        case("version", "--format", "{{.Client.Version}}", stdout=r"\d+\.\d+\.\d+\n"),
        case("-v", stdout=r"isobox version \d+\.\d+\.\d+\n"),
        case("help", "cp", stdout=r"Usage: isobox cp .*Example.*"),
        case("pull", "127.0.0.1:1/nothing", code=125, stderr="connection refused to 127.0.0.1:1"),
    ]


def run_table(cli: Cli, cases: list[Case]) -> None:
    for item in cases:
        done = cli(*item.args, input=item.stdin, timeout=180)
        where = f"isobox {' '.join(item.args)}: code {done.returncode}, stdout {done.stdout!r}, stderr {done.stderr!r}"
        assert done.returncode == item.code, where
        assert re.fullmatch(item.stdout, done.stdout, re.DOTALL), where
        assert re.search(item.stderr, done.stderr), where


def test_docker_invocations_on_a_container(cli: Cli) -> None:
    run_table(cli, table((), "c"))


def test_docker_invocations_on_a_vm(cli: Cli) -> None:
    run_table(cli, table(("--vm",), "v"))
