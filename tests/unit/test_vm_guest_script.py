from __future__ import annotations

import subprocess

import pytest

from isobox.drivers.vm.guest_script import GuestUser, command_line, resolve_user, run_script
from isobox.errors import InvalidArgumentError

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:\napp:x:1001:\n"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", GuestUser(0, 0, "/root")),
        ("app", GuestUser(1000, 1001, "/home/app")),
        ("1000", GuestUser(1000, 1001, "/home/app")),
        ("app:staff", GuestUser(1000, 50, "/home/app")),
        ("4242", GuestUser(4242, 0, "/")),
        ("4242:77", GuestUser(4242, 77, "/")),
    ],
)
def test_resolve_user(spec: str, expected: GuestUser) -> None:
    assert resolve_user(spec, PASSWD, GROUP) == expected


def test_unknown_user_and_group_are_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="unable to find user ghost"):
        resolve_user("ghost", PASSWD, GROUP)
    with pytest.raises(InvalidArgumentError, match="unable to find group ghosts"):
        resolve_user("app:ghosts", PASSWD, GROUP)
    assert resolve_user("", None, None) == GuestUser(0, 0, "/root")


def test_command_line_quotes_everything() -> None:
    line = command_line(
        ("sh", "-c", "echo 'it''s' $HOME"), (("A", "x y"), ("B", "$(boom)")), "/a dir", GuestUser(5, 6, "/h")
    )
    assert line == (
        "exec env -i 'A=x y' 'B=$(boom)' HOME=/h /bin/nsenter -r/root '-w/root/a dir' -S 5 -G 6 -F -- "
        "sh -c 'echo '\"'\"'it'\"'\"''\"'\"'s'\"'\"' $HOME'"
    )


def test_run_script_is_valid_shell_and_sets_variables() -> None:
    script = run_script(
        hostname="h'x", argv=("true",), env=(("PATH", "/bin"),), cwd="/w", user=GuestUser(0, 0, "/root")
    )
    show = '\nprintf "%s|%s|%s" "$ISOBOX_HOSTNAME" "$ISOBOX_CWD" "$ISOBOX_STDIN"'
    probe = subprocess.run(["sh", "-c", script + show], capture_output=True, text=True, check=True)
    assert probe.stdout == "h'x|/w|/dev/null"
    interactive = run_script(hostname="h", argv=("cat",), env=(), cwd="/", user=GuestUser(0, 0), interactive=True)
    assert "ISOBOX_STDIN=/dev/port-isobox.stdin\n" in interactive


def test_network_lines_configure_each_nic_by_mac() -> None:
    from tests.unit.vm_fixtures import ETH0 as eth0

    from isobox.drivers.vm.guest_script import GuestNetwork, network_lines

    lines = network_lines(GuestNetwork((eth0,), hosts="127.0.0.1\tlocalhost\n", resolv_conf="nameserver 10.88.0.1\n"))
    assert lines[:3] == [
        "isobox_network() {",
        "    isobox_link 02:42:0a:58:00:02 eth0 10.88.0.2/24 || return 1",
        "    ip route add default via 10.88.0.1 || return 1",
    ]
    assert "ISOBOX_RESOLV='nameserver 10.88.0.1\n'" in lines


def test_terminal_makes_the_workload_a_session_leader() -> None:
    line = command_line(("sh",), (), "/", GuestUser(0, 0, "/root"), tty=True)
    assert line.startswith("exec setsid -c env -i HOME=/root /bin/nsenter ")
    assert "ISOBOX_TTY=1\n" in run_script(hostname="h", argv=("sh",), env=(), cwd="/", user=GuestUser(0, 0), tty=True)
