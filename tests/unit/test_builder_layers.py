"""Layer tars of a build: a RUN's diff without its mounts, times clamped to SOURCE_DATE_EPOCH; the image
config instruction by instruction; RUN command lines; and cache keys."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from isobox.builder import instructions as ins
from isobox.builder.cachekey import stage_key, step_key
from isobox.builder.dockerfile import parse
from isobox.builder.imageconfig import ConfigBuilder, run_command
from isobox.builder.layertar import TarSink, normalize_diff
from isobox.builder.stages import plan


def _tar(path: Path, entries: list[tuple[str, int, int]]) -> Path:
    """(name, mode, mtime); names ending in "/" are directories."""
    with tarfile.open(path, "w") as tar:
        for name, mode, mtime in entries:
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode, info.mtime = mode, mtime
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
    return path


def test_a_run_diff_loses_its_mounts_and_what_only_held_them(tmp_path: Path) -> None:
    source = _tar(tmp_path / "diff.tar", [
        ("run/", 0o755, 5000), ("run/secrets/", 0o755, 5000), ("run/secrets/tok", 0o400, 5000),
        ("etc/", 0o755, 5000), ("etc/hosts", 0o644, 5000), ("etc/.wh.hostname", 0o644, 5000),
        ("made/", 0o755, 5000), ("made/cache/", 0o755, 5000),
        ("tmp/", 0o700, 5000), ("tmp/scratch/", 0o755, 5000),
        ("app/", 0o755, 5000), ("app/out", 0o644, 5000),
    ])
    sink = TarSink(tmp_path / "out.tar", epoch=1000)
    mounts = frozenset({"run/secrets/tok", "etc/hosts", "etc/hostname", "made/cache", "tmp/scratch"})
    holders = {"run": (0o755, 0, 0), "run/secrets": None, "etc": (0o755, 0, 0), "made": None,
               "tmp": (0o1777, 0, 0)}
    normalize_diff(source, sink, mounts=mounts, holders=holders)
    diff_id = sink.close()
    with tarfile.open(tmp_path / "out.tar") as tar:
        members = {member.name: member for member in tar.getmembers()}
    # /tmp stays: the step changed its mode. The others only held mount points.
    assert sorted(members) == ["app", "app/out", "tmp"]
    assert {member.mtime for member in members.values()} == {1000}
    again = TarSink(tmp_path / "again.tar", epoch=1000)
    normalize_diff(source, again, mounts=mounts, holders=holders)
    assert again.close() == diff_id  # the same diff gives the same layer, byte for byte


def test_config_follows_the_instructions() -> None:
    dockerfile = parse(
        "FROM busybox\n"
        "ENV A=1 B=2\nENV A=3\n"
        "LABEL x=y\nEXPOSE 80 53/udp 8000-8002\nVOLUME /data\nUSER app\nWORKDIR /srv\nWORKDIR sub\n"
        'SHELL ["/bin/bash", "-c"]\nCMD echo hi\nENTRYPOINT ["run"]\n'
        "STOPSIGNAL SIGINT\nHEALTHCHECK --timeout=3s CMD check\nONBUILD RUN later\n")
    builder = ConfigBuilder.from_base({"Env": ["PATH=/bin"], "Cmd": ["base"], "OnBuild": ["RUN old"]})
    assert "OnBuild" not in builder.config
    for step in plan(dockerfile).final.steps:
        builder.apply(step.instruction)
    config = builder.config
    assert config["Env"] == ["PATH=/bin", "A=3", "B=2"] and config["Labels"] == {"x": "y"}
    assert list(config["ExposedPorts"]) == ["80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"]
    assert config["User"] == "app" and config["WorkingDir"] == "/srv/sub" and config["Volumes"] == {"/data": {}}
    assert config["Cmd"] == ["/bin/bash", "-c", "echo hi"] and config["Entrypoint"] == ["run"]  # CMD set here stays
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "check"], "Timeout": 3_000_000_000}
    assert config["OnBuild"] == ["RUN later"] and config["StopSignal"] == "SIGINT"
    scratch = ConfigBuilder.from_base(None)
    assert scratch.config["Env"][0].startswith("PATH=/usr/local/sbin") and scratch.shell == ("/bin/sh", "-c")


def _run(text: str) -> ins.Run:
    instruction = parse("FROM x\n" + text).stages[0].instructions[0]
    assert isinstance(instruction, ins.Run)
    return instruction


def test_run_command_lines() -> None:
    shell = ("/bin/sh", "-c")
    assert run_command(_run("RUN echo hi\n"), shell).argv == ("/bin/sh", "-c", "echo hi")
    assert run_command(_run('RUN ["echo", "hi"]\n'), shell).argv == ("echo", "hi")
    body = run_command(_run("RUN <<EOF\necho a\necho b\nEOF\n"), shell)
    assert body.argv == ("/bin/sh", "-c", "echo a\necho b\n")
    script = run_command(_run("RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n"), shell)
    assert script.argv == ("/dev/pipes/EOF",) and script.script == b"#!/usr/bin/env python3\nprint(1)\n"
    fed = run_command(_run("RUN cat <<A >/f\nline\nA\n"), shell)
    assert fed.argv == ("/bin/sh", "-c", "cat <<A >/f\nline\nA\n")


def test_cache_keys() -> None:
    dockerfile = parse("FROM busybox\nRUN echo a\nARG V=1\nRUN echo b\nCOPY x /x\n")
    one = plan(dockerfile).final.steps
    two = plan(dockerfile, build_args={"V": "2"}).final.steps
    moved = plan(parse("FROM busybox\n\n\nRUN echo a\nARG V=1\nRUN echo b\nCOPY x /x\n")).final.steps
    base = stage_key("image sha256:1 linux/amd64", epoch=None)
    assert step_key(base, one[0]) == step_key(base, two[0]) == step_key(base, moved[0])  # lines may move
    assert step_key(base, one[1]) == base  # ARG alone changes nothing
    assert step_key(base, one[2]) != step_key(base, two[2])  # a RUN sees every build arg in scope
    assert step_key(base, one[3], {"files": "sha256:a"}) != step_key(base, one[3], {"files": "sha256:b"})
    assert step_key(base, one[3], {"files": "sha256:a"}) == step_key(base, two[3], {"files": "sha256:a"})
    assert stage_key("scratch", epoch=1) != stage_key("scratch", epoch=None)
