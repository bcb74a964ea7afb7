"""The CLI's own rules, without workloads: help a reader can use, Docker's exit code for a bad command line,
`help CMD`, --filter parsing, the prune question, pull failures in words, diff lines and cp's path rules."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import typer
import typer.core

from isobox.cli import app as cli_app
from isobox.cli.confirm import confirm
from isobox.errors import ImagePullError, InvalidArgumentError, NotFoundError
from isobox.service import filters, pulling
from isobox.service.changes import ChangeKind, changes_of, in_image
from isobox.service.copying import Placement, place

ISOBOX = [sys.executable, "-m", "isobox.cli.main"]
SRC = str(Path(__file__).resolve().parents[2] / "src")


def isobox(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=SRC, COLUMNS="80", ISOBOX_ROOT="/nonexistent/isobox-unit")
    return subprocess.run([*ISOBOX, *args], capture_output=True, text=True, env=env, input=stdin, timeout=60)


def _commands() -> list[tuple[str, typer.core.TyperCommand]]:
    cli_app._register([])
    root = typer.main.get_command(cli_app.app)
    assert isinstance(root, typer.core.TyperGroup)
    cli_app.plain_help(root)
    found: list[tuple[str, typer.core.TyperCommand]] = []

    def walk(group: typer.core.TyperGroup, path: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, typer.core.TyperGroup):
                walk(command, f"{path}{name} ")
            elif isinstance(command, typer.core.TyperCommand) and not command.hidden:
                found.append((f"{path}{name}", command))

    walk(root, "")
    return found


def test_every_command_option_and_argument_is_described() -> None:
    undescribed = [f"{path} {param.name}" for path, command in _commands() for param in command.params
                   if not getattr(param, "help", None) and not getattr(param, "hidden", False)]
    assert undescribed == []
    assert all(command.help for _, command in _commands())


@pytest.mark.parametrize("words", [["run"], ["ps"], ["images"], ["stats"], ["cp"], ["image", "scan"],
                                   ["system", "prune"], ["network", "ls"], ["update"], ["inspect"]])
def test_help_shows_words_not_python_types(words: list[str]) -> None:
    done = isobox(*words, "--help")
    assert done.returncode == 0, done.stderr
    for python_type in ("<str>", "<int>", "<float>", "<list", "<path>", "[str]", "<bool>"):
        assert python_type not in done.stdout, f"{' '.join(words)} --help shows {python_type}"


def test_command_list_keeps_descriptions_whole_and_main_verbs_have_examples() -> None:
    top = isobox("--help").stdout
    assert "..." not in top.split("Commands:", 1)[1]  # click cuts a long one with "..."
    for verb in ("run", "ps", "images", "exec", "stats", "inspect", "cp", "update"):
        assert "Example" in isobox("help", verb).stdout, verb  # `isobox help VERB` is `VERB --help`


def test_a_bad_command_line_exits_125_with_the_parser_message() -> None:
    for args in (["run", "--bogus", "busybox"], ["ps", "--bogus"], ["rm"], ["network", "ls", "--nope"]):
        done = isobox(*args)
        assert done.returncode == 125, (args, done.returncode, done.stderr)
        assert "No such option" in done.stderr or "Missing argument" in done.stderr
    version = isobox("-v")
    assert version.returncode == 0 and version.stdout.startswith("isobox version ")


def test_filters_from_the_command_line() -> None:
    chosen = filters.from_args(["status=exited", "label=a=b", "status=created"], filters.WORKLOAD_FILTERS, op="ps")
    assert chosen == {"status": ["exited", "created"], "label": ["a=b"]}
    with pytest.raises(InvalidArgumentError, match="invalid filter 'colour'"):
        filters.from_args(["colour=red"], filters.WORKLOAD_FILTERS, op="ps")
    with pytest.raises(InvalidArgumentError, match="expected name=value"):
        filters.from_args(["dangling"], filters.IMAGE_FILTERS, op="images")
    with pytest.raises(InvalidArgumentError, match="invalid filter 'status=sleeping'"):
        filters.check_workload_filters({"status": ["sleeping"]})
    assert filters.label_matches({"a": "b"}, ["a", "a=b", "c!=d"]) and not filters.label_matches({}, ["a"])


@pytest.mark.parametrize(("answer", "goes_on"), [("y\n", True), ("yes\n", True), ("n\n", False), ("", False)])
def test_prune_asks_first(answer: str, goes_on: bool, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
    if goes_on:
        confirm("This will remove all stopped workloads.")
    else:
        with pytest.raises(typer.Exit) as stopped:
            confirm("This will remove all stopped workloads.")
        assert stopped.value.exit_code == 0
    asked = capsys.readouterr().err
    assert "WARNING! This will remove all stopped workloads." in asked and "[y/N]" in asked


def _failure(cause: BaseException, message: str = "fetching manifest failed") -> ImagePullError:
    try:
        raise ImagePullError(message, op="get manifest") from cause
    except ImagePullError as exc:
        return exc


def test_pull_failures_in_words() -> None:
    unresolved = _failure(socket.gaierror(-2, "Name or service not known"))
    assert pulling.reason(unresolved, "alpine").startswith("cannot resolve the registry host docker.io")
    refused = _failure(ConnectionRefusedError(111, "Connection refused"))
    assert pulling.reason(refused, "127.0.0.1:5999/x/y") == "connection refused to 127.0.0.1:5999"
    denied = ImagePullError("manifest x/y:latest: HTTP 401: access denied; log in with `isobox login reg`")
    assert pulling.reason(denied, "reg:5000/x/y").startswith("pull access denied for reg:5000/x/y")
    missing = NotFoundError("manifest: HTTP 404: not found")
    assert pulling.reason(missing, "alpine:nope") == "manifest for alpine:nope not found: manifest unknown"
    worded = pulling.failure(missing, "alpine:nope")
    assert isinstance(worded, NotFoundError) and "Errno" not in str(worded) and str(worded).startswith("pull ")
    assert pulling.familiar("alpine") == "alpine:latest"


def _layer(entries: dict[str, bytes | None]) -> io.BytesIO:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    data.seek(0)
    return data


def test_diff_lines_from_a_layer(tmp_path: Path) -> None:
    lower = tmp_path / "layer"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "motd").write_text("hi")
    (lower / "bin").mkdir()
    if os.geteuid() == 0:  # a whiteout (0/0 character device), as unpack.py writes one
        os.mknod(lower / "etc" / "gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    layer = _layer({"etc": None, "etc/motd": b"changed", "etc/new": b"x", "bin": None, "bin/.wh.vi": b"",
                    "tmp": None, "tmp/.wh..wh..opq": b""})
    found = [(c.kind, c.path) for c in changes_of(layer, (str(lower),))]
    assert found == [(ChangeKind.CHANGED, "/bin"), (ChangeKind.DELETED, "/bin/vi"), (ChangeKind.CHANGED, "/etc"),
                     (ChangeKind.CHANGED, "/etc/motd"), (ChangeKind.ADDED, "/etc/new"), (ChangeKind.ADDED, "/tmp")]
    if os.geteuid() == 0:  # a whiteout in a layer hides the path: it is not the image's
        assert not in_image((str(lower),), "/etc/gone")


def test_cp_places_as_docker_does() -> None:
    assert place(False, False, "/tmp", "dir") == Placement("/tmp")  # a file into a directory
    assert place(False, False, "/tmp/new", "missing") == Placement("/tmp", "new")  # saved under the new name
    assert place(False, False, "/etc/motd", "file") == Placement("/etc", "motd")  # over a file
    assert place(True, False, "/data", "missing") == Placement("/", "data")  # a directory as the new one
    assert place(True, True, "/data", "missing") == Placement("/data", create=True)  # SRC/. into a new one
    with pytest.raises(NotFoundError, match="does not exist"):
        place(False, False, "/nope/", "missing")
    with pytest.raises(InvalidArgumentError, match="over the file"):
        place(True, False, "/etc/motd", "file")
