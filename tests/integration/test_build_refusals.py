"""What `isobox build` refuses, each with the Dockerfile's file and line: reading outside the context (``..``,
absolute sources, symbolic links pointing out), unknown instructions and flags, a failing RUN (its step,
exit code and last lines); and what a failed, interrupted (Ctrl-C, SIGTERM) or killed build leaves: no
tag, no workload, mount or cgroup (the leak checks of the ``cli`` fixture), and a next build that works."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.integration.build_helpers import build, context, run
from tests.integration.conftest import ISOBOX, Cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _refused(cli: Cli, ctx: Path, *pieces: str, args: tuple[str, ...] = ()) -> str:
    _, stderr = build(cli, ctx, "-t", "refused:1", *args, check=False)
    for piece in pieces:
        assert piece in stderr, stderr
    assert "refused" not in cli("images", check=True).stdout
    assert cli("ps", "-a", "-q", check=True).stdout == ""
    return stderr


def test_sources_never_leave_the_context(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("outside\n")
    ctx = context(tmp_path, {"in.txt": "in\n", "dir/ok.txt": "ok\n"})
    (ctx / "pw").symlink_to("/etc/passwd")
    (ctx / "up").symlink_to("../outside.txt")
    (ctx / "dir" / "abs").symlink_to("/etc")
    (ctx / "inside").symlink_to("dir/ok.txt")
    for number, (source, why) in enumerate([
        ("../outside.txt", "uses '..'"), ("/etc/passwd", "is an absolute path"),
        ("pw", "outside the build context"), ("up", "outside the build context"),
        ("dir/abs/passwd", "outside the build context"),
    ]):
        (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN true\nCOPY {source} /x\n")
        _refused(cli, ctx, "Dockerfile:3", why)
        (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN --mount=type=bind,source={source},target=/m true\n")
        if number < 2:
            _refused(cli, ctx, "Dockerfile:2", "must be a path inside the build context")
        else:
            _refused(cli, ctx, "Dockerfile:2", "outside the build context")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY inside /inside\nCOPY dir /dir\n")
    image, _ = build(cli, ctx)
    # A link inside the context is followed; links inside a copied directory stay links, never read.
    assert run(cli, image, "sh", "-c", "cat /inside; readlink /dir/abs") == "ok\n/etc\n"


def test_malformed_dockerfiles(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"a": "a"})
    cases = [
        ("FROM busybox\nCOPPY a /a\n", ("Dockerfile:2", "unknown instruction: COPPY", "did you mean COPY?")),
        ("FROM busybox\nCOPY --frmo=x a /a\n", ("Dockerfile:2", "unknown flag: --frmo")),
        ("FROM busybox\nRUN --mount=type=ssh true\n", ("Dockerfile:2", "type=ssh is not supported")),
        ("FROM busybox\nCOPY a Dockerfile /dest\n", ("Dockerfile:2", "must be a directory ending in /")),
        ("FROM busybox\nCOPY missing /m\n", ("Dockerfile:2", "'missing': no such file or directory")),
        ("FROM busybox\nRUN --mount=type=secret,id=tok,required cat /run/secrets/tok\n",
         ("Dockerfile:2", "secret 'tok' is required")),
        ("FROM busybox\nADD --checksum=sha256:00 a /a\n", ("Dockerfile:2", "--checksum is only for http(s)")),
    ]
    for text, pieces in cases:
        (ctx / "Dockerfile").write_text(text)
        _refused(cli, ctx, *pieces)
    (ctx / "Dockerfile").write_text("FROM busybox AS one\nRUN true\n")
    _refused(cli, ctx, "target stage 'two' could not be found", args=("--target", "two"))
    _refused(cli, ctx, "isobox builds for this host's platform", args=("--platform", "linux/s390x"))
    _, stderr = build(cli, ctx, "-t", "Bad Name", check=False)
    assert "Bad Name" in stderr


def test_a_failing_run_names_its_step_code_and_output(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "FROM busybox\n"
        "RUN echo fine\n"
        "RUN for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do echo line-$i; done; \\\n"
        "    echo to-stderr >&2; exit 3\n")})
    done = cli("build", "-t", "failing:1", str(ctx))
    assert done.returncode == 1
    message = done.stderr[done.stderr.index("isobox:"):]
    assert "Dockerfile:3-4: RUN for i in 1 2" in message and "exited with code 3" in message
    assert "line-25" in message and "to-stderr" in message and "line-5\n" not in message  # the last lines only
    assert "failing" not in cli("images", check=True).stdout and cli("ps", "-a", "-q").stdout == ""
    missing = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN no-such-command\n"}, name="missing")
    _refused(cli, missing, "Dockerfile:2", "exited with code 127")
    ok = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo fine\n"}, name="ok")
    image, progress = build(cli, ok)
    assert "CACHED" in progress and image


def _start(cli: Cli, ctx: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ISOBOX_ROOT=str(cli.root))
    return subprocess.Popen([*ISOBOX, "build", "--progress", "plain", "-t", "interrupted:1", *args, str(ctx)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for_step(cli: Cli) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = cli("ps", "-a", "-q").stdout.split()
        if listed:
            return listed[0]
        time.sleep(0.2)
    raise AssertionError("the build's RUN step never started")


def _nothing_left(cli: Cli) -> None:
    assert cli("ps", "-a", "-q").stdout == ""
    assert "interrupted" not in cli("images", check=True).stdout
    tmp = Path(cli.root) / "lib" / "tmp"
    assert not list(tmp.glob("build-*")) if tmp.is_dir() else True


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_build_leaves_nothing(cli: Cli, tmp_path: Path, how: signal.Signals) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "FROM busybox AS slow\nRUN echo started; sleep 60\n"
        "FROM busybox AS other\nRUN sleep 60\n"
        "FROM busybox\nCOPY --from=slow /etc/hostname /a\nCOPY --from=other /etc/hostname /b\n")})
    process = _start(cli, ctx)
    _wait_for_step(cli)
    time.sleep(0.5)
    process.send_signal(how)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    _nothing_left(cli)
    quick = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo next\n"}, name="next")
    assert build(cli, quick)[0]


def test_a_killed_build_is_swept_by_the_next_one_and_by_system_prune(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN sleep 60\n"})
    for sweep in (("system", "prune", "-f"), ("build", "-q", str(context(tmp_path, {"Dockerfile": "FROM busybox\n"},
                                                                       name="next")))):
        process = _start(cli, ctx, "--no-cache")
        _wait_for_step(cli)
        process.kill()
        process.communicate(timeout=30)
        assert cli("ps", "-a", "-q").stdout.strip(), "the killed build's step should still be there"
        cli(*sweep, check=True)
        _nothing_left(cli)
