"""Pure rules of the model: command resolution, env, signals, sizes, names, lifecycle, users."""

from __future__ import annotations

import pytest

from isobox.errors import InvalidArgumentError, InvalidStateError
from isobox.model import ids
from isobox.model.image_config import ImageConfig
from isobox.model.plan import merge_env, parse_signal, resolve, resolve_argv
from isobox.model.spec import Restart, RestartPolicy, WorkloadSpec, parse_env, parse_env_file, parse_size
from isobox.model.status import Op, Status, can_transition, require
from isobox.model.users import ResolvedUser, resolve_user

IMAGE = ImageConfig(
    entrypoint=("/entry",),
    cmd=("default", "args"),
    env=(("PATH", "/img"), ("A", "1")),
    workdir="/srv",
    user="app",
    stop_signal="SIGQUIT",
)


def test_argv_follows_docker_rules() -> None:
    assert resolve_argv(WorkloadSpec("i"), IMAGE) == ("/entry", "default", "args")
    assert resolve_argv(WorkloadSpec("i", command=("x",)), IMAGE) == ("/entry", "x")
    # An explicit entrypoint drops the image's Cmd.
    assert resolve_argv(WorkloadSpec("i", entrypoint=("/bin/sh",)), IMAGE) == ("/bin/sh",)
    assert resolve_argv(WorkloadSpec("i", entrypoint=(), command=("ls",)), IMAGE) == ("ls",)
    with pytest.raises(InvalidArgumentError, match="no command"):
        resolve_argv(WorkloadSpec("i"), ImageConfig())


def test_plan_merges_env_workdir_user_and_stop_signal() -> None:
    spec = WorkloadSpec("i", env=(("A", "2"), ("B", "3")), name="n")
    plan = resolve(spec, IMAGE, id="a" * 64, name="n", image_id="sha256:x", layers=("/l",), workload_dir="/w")
    env = dict(plan.process.env)
    assert env["A"] == "2" and env["B"] == "3" and env["PATH"] == "/img"
    assert env["HOSTNAME"] == "a" * 12
    assert plan.process.cwd == "/srv" and plan.process.user == "app"
    assert plan.stop_signal == 3
    assert plan.log_path == "/w/output.log"


def test_relative_workdir_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="not absolute"):
        resolve(
            WorkloadSpec("i", workdir="rel"), IMAGE, id="a" * 64, name="n", image_id="x", layers=(), workload_dir="/w"
        )


def test_merge_env_keeps_first_order_and_last_value() -> None:
    assert merge_env((("A", "1"), ("B", "1")), (("A", "2"),)) == (("A", "2"), ("B", "1"))


@pytest.mark.parametrize(("text", "number"), [("SIGTERM", 15), ("term", 15), ("9", 9), ("KILL", 9), ("HUP", 1)])
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


def test_parse_signal_rejects_unknown() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown signal"):
        parse_signal("SIGNOPE")


def test_env_parsing() -> None:
    assert parse_env(["A=1", "B=", "C=x=y"]) == (("A", "1"), ("B", ""), ("C", "x=y"))
    assert parse_env(["HOME"], {"HOME": "/root"}) == (("HOME", "/root"),)
    assert parse_env(["MISSING"], {}) == ()
    with pytest.raises(InvalidArgumentError):
        parse_env(["=v"])
    assert parse_env_file("# c\n\nA=1\n B=2 \n", "f") == ("A=1", "B=2")


@pytest.mark.parametrize(("text", "value"), [("512m", 512 * 1024**2), ("1g", 1024**3), ("100", 100), ("1.5k", 1536)])
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_parse_size_rejects_garbage() -> None:
    with pytest.raises(InvalidArgumentError, match="invalid memory"):
        parse_size("lots", what="memory")


def test_restart_policy_parsing() -> None:
    assert Restart.parse("on-failure:3") == Restart(RestartPolicy.ON_FAILURE, 3)
    assert Restart.parse("always").policy is RestartPolicy.ALWAYS
    with pytest.raises(InvalidArgumentError):
        Restart.parse("always:2")
    with pytest.raises(InvalidArgumentError):
        Restart.parse("sometimes")


def test_names_and_ids() -> None:
    assert len(ids.new_id()) == 64 and ids.short_id("ab" * 32) == "ab" * 6
    assert ids.validate_name("web-1.a_b") == "web-1.a_b"
    for bad in ("", "-x", "a/b", "x" * 200):
        with pytest.raises(InvalidArgumentError):
            ids.validate_name(bad)


def test_lifecycle_rules() -> None:
    require(Op.START, Status.CREATED, workload="w")
    with pytest.raises(InvalidStateError, match="cannot exec workload w: it is exited"):
        require(Op.EXEC, Status.EXITED, workload="w")
    with pytest.raises(InvalidStateError):
        require(Op.REMOVE, Status.RUNNING, workload="w")
    require(Op.FORCE_REMOVE, Status.RUNNING, workload="w")
    assert can_transition(Status.RUNNING, Status.EXITED)
    assert not can_transition(Status.REMOVING, Status.RUNNING)


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\n"


def test_resolve_user() -> None:
    assert resolve_user("", PASSWD, GROUP).uid == 0
    app = resolve_user("app", PASSWD, GROUP)
    assert (app.uid, app.gid, app.additional_gids, app.home) == (1000, 1000, (10,), "/home/app")
    assert resolve_user("1000:10", PASSWD, GROUP).gid == 10
    assert resolve_user("4242", None, None).uid == 4242
    assert resolve_user("app:wheel", PASSWD, GROUP).gid == 10
    with pytest.raises(InvalidArgumentError, match="unable to find user ghost: no matching entry in passwd file"):
        resolve_user("ghost", PASSWD, GROUP)
    with pytest.raises(InvalidArgumentError, match="unable to find group ghosts: no matching entry in group file"):
        resolve_user("app:ghosts", PASSWD, GROUP)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", ResolvedUser(0, 0, home="/root")),
        ("app", ResolvedUser(1000, 1000, (10,), "/home/app")),
        ("1000", ResolvedUser(1000, 1000, (10,), "/home/app")),  # a uid with an entry is that user
        ("app:wheel", ResolvedUser(1000, 10, (), "/home/app")),  # an explicit group: no supplementary ones
        ("app:1000", ResolvedUser(1000, 1000, (), "/home/app")),
        ("4242", ResolvedUser(4242, 0, (), "/")),  # numeric, no entry: gid 0, home /
        ("4242:77", ResolvedUser(4242, 77, (), "/")),
    ],
)
def test_resolve_user_follows_dockers_rules(spec: str, expected: ResolvedUser) -> None:
    """The one resolver of containers and VMs (model/users.py), with Docker's (runc's) rules."""
    assert resolve_user(spec, PASSWD, GROUP) == expected
