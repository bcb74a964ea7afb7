"""One suite, both drivers: every test runs once with a container and once with a VM, through the service
layer, and expects the same results (lifecycle, exit codes, signals, stdio, exec, logs, stats, limits,
user and groups, snapshots, commit, networks, volumes). A capability one kind lacks is a typed refusal
that the suite checks too. A driver is done when it passes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.oci_build import Entry, commit_image, layer_tar

from isobox.errors import CommandError, InvalidStateError, UnsupportedError
from isobox.model.mounts import MountKind, MountSpec
from isobox.model.record import RunResult, WorkloadRecord
from isobox.model.spec import Kind, Resources, WorkloadSpec
from isobox.model.status import Status
from isobox.model.streams import Attach, ExecSpec
from isobox.service import commit, control, images, logs, networks, snapshots, workloads
from isobox.service.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KINDS = [pytest.param(Kind.CONTAINER, id="container"), pytest.param(Kind.VM, id="vm", marks=pytest.mark.vm)]
USERS_IMAGE = "localhost/conformance-users:1"
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:app\naudio:x:29:other,app\napp:x:1000:\nnogroup:x:65534:\n"


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def made(ctx: Context) -> Iterator[list[str]]:
    """Names of the workloads a test made; each is removed (with -f) at the end."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            workloads.remove(ctx, name, force=True, volumes=True)
        except Exception:  # already removed by the test
            pass
    networks.prune(ctx)


def spec(kind: Kind, *command: str, **fields: object) -> WorkloadSpec:
    fields.setdefault("networks", ("none",))
    return WorkloadSpec(image=fields.pop("image", "busybox"), command=command, kind=kind, **fields)  # type: ignore[arg-type]


def run(ctx: Context, made: list[str], wanted: WorkloadSpec, stdin: int | None = None) -> RunResult:
    """A foreground run with stdout and stderr captured (and stdin from ``stdin``)."""
    made.append(str(wanted.name))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    chunks: dict[int, bytes] = {}

    def drain(fd: int) -> None:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        chunks[fd] = data
        os.close(fd)

    readers = [threading.Thread(target=drain, args=(fd,)) for fd in (out_r, err_r)]
    for reader in readers:
        reader.start()
    try:
        result = workloads.run(ctx, wanted, attach=Attach(stdin=stdin, stdout=out_w, stderr=err_w))
    finally:
        os.close(out_w)
        os.close(err_w)
        for reader in readers:
            reader.join()
    return RunResult(result.record, result.exit_code, chunks[out_r], chunks[err_r])


def detached(ctx: Context, made: list[str], wanted: WorkloadSpec, ready: str = "") -> WorkloadRecord:
    """Start in the background; with ``ready``, wait until the workload printed it."""
    made.append(str(wanted.name))
    record = workloads.run(ctx, wanted, detach=True).record
    deadline = time.monotonic() + 90
    while ready and ready not in log_text(ctx, record.name):
        assert time.monotonic() < deadline, f"{record.name} never printed {ready!r}"
        time.sleep(0.1)
    return record


def log_text(ctx: Context, name: str, stream: str = "stdout") -> str:
    return "".join(
        e.content.decode() + ("" if e.partial else "\n") for e in logs.read(ctx, name) if e.stream == stream
    )


def exec_capture(ctx: Context, name: str, wanted: ExecSpec, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    paths = [Path(f"/tmp/conformance-{os.getpid()}-{i}-{time.monotonic_ns()}") for i in range(3)]
    paths[0].write_bytes(stdin or b"")
    try:
        with open(paths[0], "rb") as source, open(paths[1], "wb") as out, open(paths[2], "wb") as err:
            code = control.exec(ctx, name, wanted, Attach(source.fileno(), out.fileno(), err.fileno()))
        return code, paths[1].read_bytes(), paths[2].read_bytes()
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


# ---- lifecycle, stdio, exit codes ---------------------------------------------------------------


def test_exit_code_and_streams_apart(ctx: Context, made: list[str], kind: Kind) -> None:
    result = run(ctx, made, spec(kind, "sh", "-c", "echo out; echo err >&2; printf partial; exit 3", name="codes"))
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\npartial", b"err\n")
    assert result.record.status is Status.EXITED and result.record.exit_code == 3
    assert log_text(ctx, "codes") == "out\npartial" and log_text(ctx, "codes", "stderr") == "err\n"
    # Not found: 127, as a shell and Docker say (a container's runtime refuses it before it runs; a VM's
    # guest shell reports it).
    try:
        code = run(ctx, made, spec(kind, "/no/such/program", name="missing")).exit_code
    except CommandError as exc:
        assert "no such file or directory" in str(exc)
        code = exc.exit_code
    assert code == 127


def test_env_cwd_user_groups_hostname(ctx: Context, made: list[str], kind: Kind) -> None:
    """The same user resolution for both kinds (model/users.py): uid, gid and supplementary groups."""
    base = Path(ctx.images.layer_dirs(images.install_builtin(ctx))[0])
    entries = [Entry("etc/passwd", data=PASSWD.encode()), Entry("etc/group", data=GROUP.encode())]
    commit_image(ctx.images, USERS_IMAGE, layer_tar(entries, base), {"Cmd": ["sh"]})
    probe = 'echo "$GREETING|$(pwd)|$(id -u):$(id -g)|$(id -G)|$(hostname)|$HOME"'
    result = run(
        ctx, made,
        spec(kind, "sh", "-c", probe, image=USERS_IMAGE, name="who", user="app", workdir="/tmp/work",
             hostname="box", env=(("GREETING", "hi there"),)),
    )  # fmt: skip
    assert result.stdout == b"hi there|/tmp/work|1000:1000|1000 10 29|box|/home/app\n", result.stderr
    explicit = run(ctx, made, spec(kind, "id", "-G", image=USERS_IMAGE, name="who2", user="app:audio"))
    assert explicit.stdout == b"29\n"  # an explicit group: no supplementary groups (Docker's rule)
    numeric = run(ctx, made, spec(kind, "sh", "-c", "id -u; id -g", image=USERS_IMAGE, name="who3", user="4242:55"))
    assert numeric.stdout == b"4242\n55\n"


def test_stdin_reaches_the_workload(ctx: Context, made: list[str], kind: Kind, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.write_bytes(b"hello\nworld\n")
    with open(source, "rb") as stdin:
        result = run(ctx, made, spec(kind, "sh", "-c", "tr a-z A-Z; echo done", name="stdin", interactive=True),
                     stdin=stdin.fileno())
    assert (result.exit_code, result.stdout) == (0, b"HELLO\nWORLD\ndone\n")


# ---- a running workload -------------------------------------------------------------------------


def test_exec_top_stats_and_limits(ctx: Context, made: list[str], kind: Kind) -> None:
    wanted = spec(kind, "sh", "-c", "echo ready; sleep 600", name="busy",
                  resources=Resources(memory_bytes=96 << 20, pids_limit=50))  # fmt: skip
    detached(ctx, made, wanted, ready="ready")
    code, out, err = exec_capture(
        ctx, "busy",
        ExecSpec(("sh", "-c", "echo $X; id -u; pwd; echo e >&2; exit 4"), env=(("X", "from exec"),),
                 user="nobody", cwd="/tmp"),
    )  # fmt: skip
    assert (code, out, err) == (4, b"from exec\n65534\n/tmp\n", b"e\n")
    code, out, _ = exec_capture(ctx, "busy", ExecSpec(("cat",), interactive=True), stdin=b"piped in\n")
    assert (code, out) == (0, b"piped in\n")
    table = control.top(ctx, "busy")
    assert any("sleep 600" in " ".join(row) for row in table.rows), table
    stats = control.stats(ctx, "busy")
    assert stats.memory_bytes > 0 and stats.memory_limit_bytes == 96 << 20


def test_signals_stop_and_kill(ctx: Context, made: list[str], kind: Kind) -> None:
    trapping = "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 1; done"
    detached(ctx, made, spec(kind, "sh", "-c", trapping, name="trap"), ready="ready")
    stopped = control.stop(ctx, "trap", timeout_s=30)
    assert (stopped.status, stopped.exit_code) == (Status.EXITED, 0)
    assert log_text(ctx, "trap") == "ready\ngot TERM\n"
    # --init: a signal without a handler does not reach a container's pid 1 (pid_namespaces(7)), so tini
    # passes it on, as the VM's own init does.
    detached(ctx, made, spec(kind, "sh", "-c", "echo ready; sleep 600", name="victim", init=True), ready="ready")
    control.kill(ctx, "victim", int(signal.SIGINT))
    assert control.wait(ctx, "victim", 60).exit_code == 128 + int(signal.SIGINT)
    workloads.start(ctx, "victim")
    control.kill(ctx, "victim", int(signal.SIGKILL))
    assert control.wait(ctx, "victim", 60).exit_code == 137
    with pytest.raises(InvalidStateError, match="cannot exec workload victim: it is exited"):
        control.exec(ctx, "victim", ExecSpec(("true",)))


def test_pause_freezes_and_unpause_resumes(ctx: Context, made: list[str], kind: Kind) -> None:
    counter = "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.2; done"
    detached(ctx, made, spec(kind, "sh", "-c", f"echo ready; {counter}", name="frozen"), ready="ready")
    assert control.pause(ctx, "frozen").status is Status.PAUSED
    time.sleep(1)
    control.unpause(ctx, "frozen")
    first = exec_capture(ctx, "frozen", ExecSpec(("cat", "/tmp/n")))[1]
    time.sleep(1.5)
    assert int(exec_capture(ctx, "frozen", ExecSpec(("cat", "/tmp/n")))[1]) > int(first)


# ---- files: snapshots, commit, volumes, networks ------------------------------------------------


def test_snapshot_and_restore_bring_files_back(ctx: Context, made: list[str], kind: Kind) -> None:
    script = "echo one > /state; echo ready; sleep 600"
    detached(ctx, made, spec(kind, "sh", "-c", script, name="snap", init=True), ready="ready")
    taken = snapshots.create(ctx, "snap", "s1")
    assert [s.name for s in snapshots.list_snapshots(ctx, "snap")] == ["s1"]
    exec_capture(ctx, "snap", ExecSpec(("sh", "-c", "echo two > /state")))
    restored = snapshots.restore(ctx, "snap", "s1")
    assert restored.status is Status.RUNNING
    deadline = time.monotonic() + 90
    while True:  # a files-only restore starts the workload again: it may still be booting
        try:
            code, out, _ = exec_capture(ctx, "snap", ExecSpec(("cat", "/state")))
            break
        except Exception:  # not up yet
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert (code, out) == (0, b"one\n"), taken
    snapshots.remove(ctx, "snap", "s1")
    assert snapshots.list_snapshots(ctx, "snap") == []


def test_commit_makes_an_image_both_kinds_run(ctx: Context, made: list[str], kind: Kind) -> None:
    run(ctx, made, spec(kind, "sh", "-c", "echo committed > /marker; rm /bin/vi", name="changer"))
    image = commit.commit(ctx, "changer", f"localhost/committed-{kind.value}:1", message="conformance")
    assert image.id.startswith("sha256:")
    check = "cat /marker; test -e /bin/vi && echo vi-present || echo vi-gone"
    result = run(ctx, made, spec(Kind.CONTAINER, "sh", "-c", check, image=f"localhost/committed-{kind.value}:1",
                                 name="checker"))
    assert result.stdout == b"committed\nvi-gone\n"


def test_volumes_are_shared_with_the_other_kind(ctx: Context, made: list[str], kind: Kind) -> None:
    mount = (MountSpec(MountKind.VOLUME, "/data", "shared-vol"),)
    run(ctx, made, spec(kind, "sh", "-c", "echo from-writer > /data/f", name="writer", mounts=mount))
    other = Kind.VM if kind is Kind.CONTAINER else Kind.CONTAINER
    read = run(ctx, made, spec(other, "cat", "/data/f", name="reader", mounts=mount))
    assert read.stdout == b"from-writer\n"


def test_network_none_and_default(ctx: Context, made: list[str], kind: Kind) -> None:
    alone = run(ctx, made, spec(kind, "sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '", name="alone"))
    assert alone.stdout == b"lo "
    joined = run(ctx, made, spec(kind, "sh", "-c", "ip -4 -o addr show eth0", name="joined", networks=()))
    default = networks.get(ctx, "isobox")
    prefix = default.subnet.rsplit(".", 1)[0]
    assert f"inet {prefix}." in joined.stdout.decode(), joined.stdout


# ---- what one kind cannot do: typed refusals ----------------------------------------------------


def test_capabilities_one_kind_lacks_are_typed_refusals(ctx: Context, made: list[str], kind: Kind) -> None:
    detached(ctx, made, spec(kind, "sh", "-c", "echo ready; sleep 600", name="cap"), ready="ready")
    with pytest.raises(UnsupportedError, match="console is not available for cap"):
        control.console(ctx, "cap", Attach(stdin=None))
    if kind is Kind.CONTAINER:
        snapshots.create(ctx, "cap", "s")
        with pytest.raises(UnsupportedError, match="snapshot clone is not available for cap"):
            snapshots.clone(ctx, "cap", "s")


def test_copy_in_and_out_resolves_links_inside(ctx: Context, made: list[str], kind: Kind) -> None:
    """Capability.COPY: tar streams in and out, every path resolved inside the workload (a link to / is its /)."""
    import io
    import tarfile

    from isobox.service import archive

    detached(ctx, made, spec(kind, "sh", "-c", "mkdir -p /d && ln -s / /d/up && echo ready; sleep 600",
                             name="files"), ready="ready")
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        member = tarfile.TarInfo("note.txt")
        member.size, member.mode = 6, 0o600
        tar.addfile(member, io.BytesIO(b"hello\n"))
    packed.seek(0)
    archive.copy_to(ctx, "files", "/d/up/tmp", packed)
    assert exec_capture(ctx, "files", ExecSpec(("cat", "/tmp/note.txt")))[1] == b"hello\n"
    info = archive.stat_path(ctx, "files", "/d/up")
    assert info.link_target == "/" and not info.is_dir
    out = io.BytesIO()
    assert archive.copy_from(ctx, "files", "/tmp/note.txt", out).size_bytes == 6
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        extracted = tar.extractfile("note.txt")
        assert extracted is not None and extracted.read() == b"hello\n"


def test_health_probes_are_execs_of_either_kind(ctx: Context, made: list[str], kind: Kind) -> None:
    from isobox.model.health import HealthCheck, HealthStatus
    from isobox.service import health

    check = HealthCheck(test=("CMD-SHELL", "test -f /tmp/ok"), retries=1)
    record = detached(ctx, made, spec(kind, "sh", "-c", "echo ready; sleep 600", name="probed", health=check),
                      ready="ready")
    health.probe_once(ctx, record.id)
    failed = workloads.get(ctx, "probed").health
    assert failed is not None and failed.status is HealthStatus.UNHEALTHY and failed.log[-1].exit_code == 1
    exec_capture(ctx, "probed", ExecSpec(("touch", "/tmp/ok")))
    health.probe_once(ctx, record.id)
    state = workloads.get(ctx, "probed").health
    assert state is not None and state.status is HealthStatus.HEALTHY and state.log[-1].exit_code == 0
