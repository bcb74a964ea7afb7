"""The VM driver end to end: the built-in busybox image booted under QEMU (TCG on hosts without KVM).

Each boot costs about 3.5 s under TCG; the whole file stays within a few minutes.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from isobox.drivers.logfile import read_entries
from isobox.drivers.vm import interact
from isobox.drivers.vm.driver import VMDriver
from isobox.errors import WorkloadError
from isobox.linux.cgroups import WorkloadCgroup
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind, Resources, WorkloadSpec
from isobox.model.status import Status
from isobox.model.streams import Attach, ExecSpec
from isobox.service import workloads
from isobox.service.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(300)]

MakeVM = Callable[..., WorkloadRecord]


@pytest.fixture
def driver(ctx: Context) -> VMDriver:
    return VMDriver(ctx.paths)


@pytest.fixture
def make_vm(ctx: Context, driver: VMDriver) -> Iterator[MakeVM]:
    """Create VM workloads from WorkloadSpec fields; every one is deleted at the end of the test."""
    made: list[WorkloadRecord] = []

    def make(*command: str, **fields: object) -> WorkloadRecord:
        spec = WorkloadSpec(image="busybox", command=tuple(command), kind=Kind.VM, **fields)  # type: ignore[arg-type]
        record = workloads.create_from_plan(ctx, workloads.plan(ctx, spec))
        made.append(record)
        return record

    yield make
    for record in made:
        driver.delete(record)


def output(record: WorkloadRecord, stream: str = "stdout") -> str:
    return "".join(
        e.content.decode() + ("" if e.partial else "\n")
        for e in read_entries(Path(record.plan.log_path))
        if e.stream == stream
    )


def gone(pid: int, timeout_s: float = 10) -> bool:
    """The process is gone (or a zombie waiting for its reaper: QEMU daemonizes away from us)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def run(driver: VMDriver, record: WorkloadRecord, timeout_s: float = 60) -> int:
    driver.start(record)
    observation = driver.wait(record, timeout_s)
    assert observation.status is Status.EXITED, observation
    assert observation.exit_code is not None
    return observation.exit_code


def test_echo_and_exit_code_and_streams_apart(driver: VMDriver, make_vm: MakeVM) -> None:
    record = make_vm("sh", "-c", "echo hello from the vm; echo oops >&2; printf partial; exit 3")
    assert record.driver_info["accelerator"] in ("kvm", "tcg")
    assert record.driver_info["accelerator_reason"]
    assert driver.observe(record).status is Status.CREATED
    assert run(driver, record) == 3
    assert output(record) == "hello from the vm\npartial"
    assert output(record, "stderr") == "oops\n"


def test_env_cwd_user_hostname(driver: VMDriver, make_vm: MakeVM) -> None:
    record = make_vm(
        "sh",
        "-c",
        'echo "$GREETING|$(pwd)|$(id -u):$(id -g)|$(hostname)|$HOME"',
        env=(("GREETING", "hi there"),),
        workdir="/tmp/work",
        user="nobody",
        hostname="vmhost",
    )
    assert run(driver, record) == 0
    assert output(record) == "hi there|/tmp/work|65534:65534|vmhost|/nonexistent\n"


def test_numeric_user_and_missing_command(driver: VMDriver, make_vm: MakeVM) -> None:
    numeric = make_vm("id", "-u", user="1234:55")
    missing = make_vm("/no/such/program")
    driver.start(numeric)
    driver.start(missing)
    assert driver.wait(numeric, 60).exit_code == 0
    assert output(numeric) == "1234\n"
    assert driver.wait(missing, 60).exit_code == 127


def test_attach_streams_to_fds(driver: VMDriver, make_vm: MakeVM, tmp_path: Path) -> None:
    record = make_vm("sh", "-c", "echo out; echo err >&2; exit 7")
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        driver.start(record, Attach(stdin=None, stdout=out.fileno(), stderr=err.fileno()))
    assert driver.observe(record).exit_code == 7
    assert out_path.read_bytes() == b"out\n"
    assert err_path.read_bytes() == b"err\n"
    assert output(record) == "out\n"


def test_attach_after_a_detached_start_follows_from_then_on(
    driver: VMDriver, make_vm: MakeVM, tmp_path: Path
) -> None:
    """`isobox attach`: the output from the moment of attaching (as Docker's), until the VM ends."""
    record = make_vm("sh", "-c", "echo first; sleep 2; echo second; exit 2")
    driver.start(record)
    deadline = time.monotonic() + 60
    while "first" not in output(record):
        assert time.monotonic() < deadline, "the VM did not print its first line"
        driver.observe(record)
        time.sleep(0.1)
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out:
        assert driver.attach(record, Attach(stdin=None, stdout=out.fileno(), stderr=out.fileno())) is True
    assert driver.observe(record).exit_code == 2
    assert out_path.read_bytes() == b"second\n"


def test_interactive_stdin(driver: VMDriver, make_vm: MakeVM, tmp_path: Path) -> None:
    record = make_vm("sh", "-c", "tr a-z A-Z; echo done", interactive=True)
    source, out_path = tmp_path / "in", tmp_path / "out"
    source.write_bytes(b"hello\nvm\n")
    with open(source, "rb") as stdin, open(out_path, "wb") as out:
        driver.start(record, Attach(stdin=stdin.fileno(), stdout=out.fileno(), stderr=out.fileno()))
    assert out_path.read_bytes() == b"HELLO\nVM\ndone\n"
    assert driver.observe(record).exit_code == 0


def test_exec_stop_and_no_leftovers(driver: VMDriver, make_vm: MakeVM) -> None:
    record = make_vm("sh", "-c", "echo started; trap 'echo got TERM; exit 0' TERM; while :; do sleep 1; done")
    pid = driver.start(record)
    assert driver.observe(record).status is Status.RUNNING
    result = interact.exec_capture(
        driver,
        record,
        ExecSpec(
            argv=("sh", "-c", "echo $X; id -u; pwd; echo e >&2; exit 4"),
            env=(("X", "from exec"),),
            user="nobody",
            cwd="/tmp",
        ),
    )
    assert (result.stdout, result.stderr, result.exit_code) == (b"from exec\n65534\n/tmp\n", b"e\n", 4)
    stats = driver.stats(record)
    assert stats.memory_bytes > 0
    driver.stop(record, timeout_s=20)
    observation = driver.observe(record)
    assert (observation.status, observation.exit_code) == (Status.EXITED, 0)
    assert output(record) == "started\ngot TERM\n"
    driver.delete(record)
    assert gone(pid)
    assert not Path(record.plan.workload_dir).exists()
    assert not any(d.exists() for d in WorkloadCgroup.of(record.id).directories)


def test_kill_and_restart(driver: VMDriver, make_vm: MakeVM) -> None:
    record = make_vm("sh", "-c", "echo run; sleep 600")
    driver.start(record)
    deadline = time.monotonic() + 30
    while "run" not in output(record) and time.monotonic() < deadline:
        driver.observe(record)
        time.sleep(0.2)
    driver.kill(record, int(signal.SIGKILL))
    assert driver.wait(record, 30).exit_code == 137
    record = replace(record, status=Status.EXITED)
    driver.start(record)
    time.sleep(1)
    driver.kill(record, int(signal.SIGKILL))
    assert driver.wait(record, 30).exit_code == 137


def test_signal_through_agent(driver: VMDriver, make_vm: MakeVM) -> None:
    record = make_vm("sh", "-c", "echo ready; sleep 600")
    driver.start(record)
    deadline = time.monotonic() + 30
    while "ready" not in output(record) and time.monotonic() < deadline:
        driver.observe(record)
        time.sleep(0.2)
    # SIGINT: the workload must not inherit the ignored SIGINT of a shell's background job.
    driver.kill(record, int(signal.SIGINT))
    assert driver.wait(record, 30).exit_code == 128 + int(signal.SIGINT)


def test_failed_start_leaves_nothing(driver: VMDriver, make_vm: MakeVM) -> None:
    record = make_vm("true", resources=Resources(cpus=10000))  # more vCPUs than the machine type allows
    with pytest.raises(WorkloadError, match="QEMU failed to start"):
        driver.start(record)
    assert not any(d.exists() for d in WorkloadCgroup.of(record.id).directories)
    assert driver.observe(record).status is Status.CREATED
    driver.delete(record)
    assert not Path(record.plan.workload_dir).exists()
    assert not driver.files(record).sockets.exists()


def test_terminal_with_job_control(driver: VMDriver, make_vm: MakeVM) -> None:
    """-it: the workload gets a real terminal (/dev/hvc0): echo, CRLF, and ^C interrupts a foreground job."""
    record = make_vm("sh", tty=True, interactive=True)
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    attached = threading.Thread(
        target=driver.start, args=(record, Attach(stdin=in_read, stdout=out_write, stderr=out_write)), daemon=True
    )
    attached.start()
    seen = bytearray()

    def read_until(marker: bytes, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while marker not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([out_read], [], [], 0.2)
            if ready:
                seen.extend(os.read(out_read, 4096))
        assert marker in seen, bytes(seen)

    read_until(b"/ # ")
    os.write(in_write, b"tty; sleep 30\n")
    read_until(b"/dev/hvc0\r\n")
    time.sleep(1)
    os.write(in_write, b"\x03")
    read_until(b"^C")
    os.write(in_write, b"echo after $?; exit 7\n")
    read_until(b"after 130\r\n")
    attached.join(60)
    assert driver.observe(record).exit_code == 7
    for fd in (in_read, in_write, out_read, out_write):
        os.close(fd)
