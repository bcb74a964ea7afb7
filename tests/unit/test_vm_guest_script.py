from __future__ import annotations

import subprocess

from isobox.drivers.vm.guest_script import command_line, run_script
from isobox.model.users import ResolvedUser


def test_command_line_quotes_everything() -> None:
    line = command_line(
        ("sh", "-c", "echo 'it''s' $HOME"), (("A", "x y"), ("B", "$(boom)")), "/a dir", ResolvedUser(5, 6, home="/h")
    )
    assert line == (
        "exec env -i 'A=x y' 'B=$(boom)' HOME=/h /bin/nsenter -r/root '-w/root/a dir' -S 5 -G 6 -F -- "
        "sh -c 'echo '\"'\"'it'\"'\"''\"'\"'s'\"'\"' $HOME'"
    )


def test_supplementary_groups_go_through_setpriv() -> None:
    """busybox nsenter -G clears the supplementary groups; util-linux setpriv, started through its own
    loader from the initramfs (/proc/1/root), sets them after the chroot."""
    line = command_line(("id",), (), "/", ResolvedUser(1000, 1000, (10, 20), home="/home/app"))
    assert " /bin/nsenter -r/root -w/root/ -F -- /proc/1/root/usr/lib/isobox/ld.so --library-path " in line
    assert line.endswith("/proc/1/root/usr/lib/isobox/setpriv --reuid=1000 --regid=1000 --groups=10,20 -- id")
    assert " -S " not in line


def test_run_script_is_valid_shell_and_sets_variables() -> None:
    script = run_script(
        hostname="h'x", argv=("true",), env=(("PATH", "/bin"),), cwd="/w", user=ResolvedUser(0, 0, home="/root")
    )
    show = '\nprintf "%s|%s|%s" "$ISOBOX_HOSTNAME" "$ISOBOX_CWD" "$ISOBOX_STDIN"'
    probe = subprocess.run(["sh", "-c", script + show], capture_output=True, text=True, check=True)
    assert probe.stdout == "h'x|/w|/dev/null"
    interactive = run_script(hostname="h", argv=("cat",), env=(), cwd="/", user=ResolvedUser(0, 0), interactive=True)
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
    line = command_line(("sh",), (), "/", ResolvedUser(0, 0, home="/root"), tty=True)
    assert line.startswith("exec setsid -c env -i HOME=/root /bin/nsenter ")
    script = run_script(hostname="h", argv=("sh",), env=(), cwd="/", user=ResolvedUser(0, 0), tty=True)
    assert "ISOBOX_TTY=1\n" in script
