"""Docker's run flags through the isobox command, for a container and for a VM (each applies them its own way,
or refuses what its kind cannot do), and a terminal's typed-ahead input reaching `run -it`."""

from __future__ import annotations

import json
import os
import pty
import select
import time
from pathlib import Path

import pytest
from tests.integration.conftest import ISOBOX, Cli

pytestmark = pytest.mark.integration

FLAGS = ["--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway", "--dns", "9.9.9.9", "--dns-search",
         "example.com", "--dns-option", "ndots:2", "--ulimit", "nofile=1000:2000", "--shm-size", "32m",
         "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=123456", "--stop-signal", "SIGUSR1",
         "--expose", "9000"]
PROBE = ("grep -E 'db|gw' /etc/hosts; cat /etc/resolv.conf; ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1 | "
         "awk '{print $2}'; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax")


def check_probe(stdout: str, gateway: str) -> None:
    assert stdout.splitlines() == ["10.1.2.3\tdb", f"{gateway}\tgw", "nameserver 9.9.9.9", "search example.com",
                                   "options ndots:2", "1000", "2000", "32768", "1", "123456"]


def test_run_flags_in_a_container(cli: Cli, tmp_path: Path) -> None:
    cidfile = tmp_path / "cid"
    done = cli("run", "--name", "flags", "--cidfile", str(cidfile), *FLAGS, "busybox", "sh", "-c", PROBE)
    assert done.returncode == 0, done.stderr
    document = json.loads(cli("inspect", "flags", check=True).stdout)[0]
    check_probe(done.stdout, document["NetworkSettings"]["Gateway"])
    assert cidfile.read_text() == document["Id"]
    assert document["Config"]["StopSignal"] == "SIGUSR1" and "9000/tcp" in document["Config"]["ExposedPorts"]
    again = cli("run", "--cidfile", str(cidfile), "busybox", "true")
    assert again.returncode == 125 and "exists" in again.stderr

    cli("run", "-d", "--name", "mem", "--memory", "64m", "--memory-swap", "128m", "--memory-reservation", "32m",
        "--device", "/dev/fuse", "busybox", "sleep", "60", check=True)
    memory = Path("/sys/fs/cgroup/memory/isobox", cli("inspect", "-f", "{{.Id}}", "mem").stdout.strip())
    if (memory / "memory.memsw.limit_in_bytes").exists():  # cgroup v1 with swap accounting (this host)
        assert (memory / "memory.memsw.limit_in_bytes").read_text().strip() == str(128 << 20)
        assert (memory / "memory.soft_limit_in_bytes").read_text().strip() == str(32 << 20)
    assert cli("exec", "mem", "sh", "-c", "ls -l /dev/fuse").stdout.startswith("c")

    only_stdout = cli("run", "--rm", "-a", "stdout", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (only_stdout.stdout, only_stdout.stderr) == ("out\n", "")
    for flags, message in ((["--sysctl", "kernel.hostname=x"], "not namespaced"),
                           (["--platform", "linux/s390x"], "this host runs linux/"),
                           (["--pull", "sometimes"], "always, missing or never"),
                           (["-d", "-a", "stdout"], "conflicting options")):
        refused = cli("run", "--rm", *flags, "busybox", "true")
        assert refused.returncode == 125 and message in refused.stderr, (flags, refused.stderr)
    assert cli("run", "--rm", "--platform", "linux/amd64", "busybox", "true").returncode == 0
    warned = cli("run", "--rm", "--security-opt", "apparmor=unconfined", "busybox", "true")
    assert warned.returncode == 0
    if not Path("/sys/kernel/security/apparmor").exists():
        assert "ignored: this host does not run apparmor" in warned.stderr


def test_run_flags_in_a_vm(cli: Cli) -> None:
    done = cli("run", "--rm", "--vm", *FLAGS, "busybox", "sh", "-c", PROBE, timeout=180)
    assert done.returncode == 0, done.stderr
    gateway = done.stdout.splitlines()[1].split("\t")[0]  # the VM's network gateway (gone with the VM)
    check_probe(done.stdout, gateway)
    for flags, flag in ((["--device", "/dev/fuse"], "--device"), (["-m", "256m", "--memory-swap", "512m"],
                        "--memory-swap"), (["--memory-reservation", "64m"], "--memory-reservation")):
        refused = cli("run", "--rm", "--vm", *flags, "busybox", "true")
        assert refused.returncode == 125 and f"{flag} is not available for VMs" in refused.stderr, refused.stderr
    assert cli("ps", "-aq").stdout == ""  # a refusal leaves nothing behind


def test_vm_update_diff_export_and_cp(cli: Cli) -> None:
    cli("run", "-d", "--vm", "--network", "none", "--name", "v", "-m", "256m", "busybox", "sh", "-c",
        "echo x > /made; sleep 600", check=True, timeout=180)
    refused = cli("update", "--memory", "512m", "v")
    assert refused.returncode == 1 and "a running VM cannot change --memory" in refused.stderr
    assert "sleep 600" in cli("top", "v", check=True, timeout=60).stdout  # the guest's processes
    assert "/ 256MiB" in cli("stats", "--no-stream", "v", check=True).stdout
    copy = cli("cp", "v:/made", "/tmp/never")
    assert copy.returncode == 125 and "not available for the VM v" in copy.stderr
    cli("stop", "-t", "2", "v", check=True, timeout=120)
    cli("update", "--memory", "512m", "--restart", "always", "v", check=True)
    assert cli("inspect", "-f", "{{.HostConfig.Memory}}", "v").stdout == f"{512 << 20}\n"
    assert "A /made" in cli("diff", "v", check=True, timeout=180).stdout.splitlines()
    exported = cli("export", "-o", str(cli.root / "v.tar"), "v", timeout=180)
    assert exported.returncode == 0, exported.stderr
    import tarfile

    with tarfile.open(cli.root / "v.tar") as tar:
        assert "made" in tar.getnames() and "bin/busybox" in tar.getnames()


def read_until(fd: int, needle: bytes, timeout_s: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout_s
    while needle not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


@pytest.mark.parametrize("kind", [[], ["--vm", "--network", "none"]], ids=["container", "vm"])
def test_typed_ahead_input_reaches_run_it(cli: Cli, kind: list[str]) -> None:
    """What a user types before the workload is up (here: at once, through a terminal) is not thrown away."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(ISOBOX[0], [*ISOBOX, "run", "-it", "--rm", *kind, "busybox", "sh"],
                  dict(os.environ, ISOBOX_ROOT=str(cli.root)))
    os.write(fd, b"echo typed-$((6*7))\rexit 5\r")
    seen = read_until(fd, b"typed-42\r\n", 180)
    assert b"typed-42\r\n" in seen, seen[-400:]
    read_until(fd, b"\x00never", 5)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 5
