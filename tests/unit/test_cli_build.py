"""`isobox build`'s command line: the fast path knows the typer command's flags, both read a command line
alike, and build args take missing values from the environment."""

from __future__ import annotations

import inspect

import pytest
import typer
from typer.testing import CliRunner

from isobox.cli import build as typer_build
from isobox.cli import build_fast
from isobox.cli.build_command import BuildFlags, build_args


def _typer_flags() -> dict[str, tuple[str, ...]]:
    found = {}
    for name, parameter in inspect.signature(typer_build.build).parameters.items():
        default = parameter.default
        if isinstance(default, typer.models.OptionInfo):
            found[name] = tuple(sorted(default.param_decls))
    return found


def test_the_fast_path_knows_every_flag() -> None:
    assert {name: tuple(sorted(names)) for name, (names, _kind) in build_fast.OPTIONS.items()} == _typer_flags()


def test_both_paths_read_a_command_line_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["build", "-t", "a:1", "--tag", "b:2", "-f", "x.Dockerfile", "--build-arg", "K=V", "--no-cache", "-q",
            "--label", "l=1", "--network", "none", "--progress", "plain", "--vm", "--target", "t", "ctx"]
    seen: list[BuildFlags] = []
    monkeypatch.setattr(build_fast, "run_build", lambda flags: seen.append(flags) or 0)
    monkeypatch.setattr(typer_build, "run_build", lambda flags: seen.append(flags) or 0)
    assert build_fast.try_build(argv) == 0
    app = typer.Typer()
    typer_build.register(app)
    app.command("other")(lambda: None)  # a second command, so typer keeps the verb in the command line
    assert CliRunner().invoke(app, argv).exit_code == 0
    assert seen[0] == seen[1] and seen[0].tag == ["a:1", "b:2"] and seen[0].path == "ctx" and seen[0].vm


def test_unusual_command_lines_go_to_typer() -> None:
    for argv in (["build", "--help", "."], ["build", "--unknown", "."], ["build"], ["run", "busybox"],
                 ["--weird", "build", "."], ["build", "-t"]):
        assert build_fast.try_build(argv) is None, argv


def test_build_args_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_ENV", "env-value")
    monkeypatch.delenv("UNSET", raising=False)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert dict(build_args(["A=1", "FROM_ENV", "UNSET", "B="])) == {
        "A": "1", "FROM_ENV": "env-value", "B": "", "SOURCE_DATE_EPOCH": "1700000000"}
    assert dict(build_args(["SOURCE_DATE_EPOCH=5"]))["SOURCE_DATE_EPOCH"] == "5"
