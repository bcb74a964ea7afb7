"""The per-VM run script (pure): what the guest init sources from fw_cfg to run the workload.

Every value is quoted with shlex.quote (POSIX single quotes), so arbitrary argv/env/cwd reach the
guest unchanged. The workload is started as

    exec env -i K=V ... /bin/nsenter -r/root -w/root/CWD -S UID -G GID -F -- ARGV...

env -i gives exactly the image's environment; busybox nsenter chroots into the image root, changes
to the working directory and drops to the user (setgroups, setgid, setuid) without forking (-F), so
the workload's pid is the one init waits for and signals. The user is resolved on the host against
the image's /etc/passwd and /etc/group by model/users.py, the same code containers use (the guest's
initramfs has files of its own); supplementary groups need setpriv (see SETPRIV_DIR).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from isobox.model.host_settings import Ulimit
from isobox.model.network import InterfacePlan
from isobox.model.users import ResolvedUser

GUEST_ROOT = "/root"


# util-linux setpriv, which busybox lacks, sets supplementary groups (busybox nsenter -G clears them). It is a
# dynamic binary in the initramfs (initramfs.SETPRIV_DIR, with its libraries), started after nsenter's chroot
# through its own dynamic loader, reached as /proc/1/root/…: init (pid 1) keeps the initramfs as its root.
SETPRIV_DIR = "/usr/lib/isobox"
_SETPRIV = (
    f"/proc/1/root{SETPRIV_DIR}/ld.so",
    "--library-path",
    f"/proc/1/root{SETPRIV_DIR}",
    f"/proc/1/root{SETPRIV_DIR}/setpriv",
)


def command_line(
    argv: tuple[str, ...], env: tuple[tuple[str, str], ...], cwd: str, user: ResolvedUser, *, tty: bool = False
) -> str:
    """The shell command that runs argv in the image root as the user (see the module docstring), with
    the user's supplementary groups. With a terminal, busybox `setsid -c` first makes it a session leader
    whose controlling terminal is its stdin (/dev/hvc0), so ^C and job control reach it as on any terminal."""
    environment = dict(env)
    environment.setdefault("HOME", user.home)
    words = ["exec", *(("setsid", "-c") if tty else ()), "env", "-i"]
    words += [shlex.quote(f"{key}={value}") for key, value in environment.items()]
    words += ["/bin/nsenter", shlex.quote(f"-r{GUEST_ROOT}"), shlex.quote(f"-w{GUEST_ROOT}{cwd}")]
    if user.additional_gids:
        groups = ",".join(str(g) for g in user.additional_gids)
        words += ["-F", "--", *_SETPRIV, f"--reuid={user.uid}", f"--regid={user.gid}", f"--groups={groups}", "--"]
    else:
        words += ["-S", str(user.uid), "-G", str(user.gid), "-F", "--"]
    words += [shlex.quote(arg) for arg in argv]
    return " ".join(words)


@dataclass(frozen=True)
class GuestNetwork:
    """What the guest init configures: its NICs (found by MAC), the default route, /etc/hosts and
    /etc/resolv.conf of the image root (written at each boot, as Docker bind-mounts them)."""

    interfaces: tuple[InterfacePlan, ...] = ()
    hosts: str = ""
    resolv_conf: str = ""


def network_lines(network: GuestNetwork) -> list[str]:
    lines = ["isobox_network() {"]
    for index, interface in enumerate(network.interfaces):
        words = [interface.mac, interface.ifname, f"{interface.ip}/{interface.prefix_len}"]
        lines.append("    isobox_link " + " ".join(shlex.quote(w) for w in words) + " || return 1")
        if index == 0 and interface.gateway:
            lines.append(f"    ip route add default via {shlex.quote(interface.gateway)} || return 1")
    lines += ["    :", "}"]
    lines.append(f"ISOBOX_HOSTS={shlex.quote(network.hosts)}")
    lines.append(f"ISOBOX_RESOLV={shlex.quote(network.resolv_conf)}")
    return lines


# busybox ash's ulimit letter for each of Docker's names, and the shift from Docker's units (bytes for sizes)
# to the shell's (busybox shell/shell_common.c: blocks of 512 bytes for core and fsize, KiB for the others).
_ULIMIT_LETTERS = {"core": ("c", 9), "data": ("d", 10), "nice": ("e", 0), "fsize": ("f", 9), "sigpending": ("i", 0),
                   "memlock": ("l", 10), "rss": ("m", 10), "nofile": ("n", 0), "msgqueue": ("q", 0),
                   "rtprio": ("r", 0), "stack": ("s", 10), "cpu": ("t", 0), "nproc": ("u", 0), "as": ("v", 10),
                   "locks": ("x", 0)}


def unsupported_ulimits(ulimits: tuple[Ulimit, ...]) -> list[str]:
    """The --ulimit names the guest's shell cannot set (rttime)."""
    return [u.name for u in ulimits if u.name not in _ULIMIT_LETTERS]


def _limit(value: int, shift: int) -> str:
    return "unlimited" if value < 0 else str(value >> shift)


def settings_lines(ulimits: tuple[Ulimit, ...], sysctls: tuple[tuple[str, str], ...]) -> list[str]:
    """What the guest init does before the workload starts (as root, before nsenter drops to the user): each
    --sysctl written under /proc/sys (the guest's own kernel), each --ulimit set (hard and soft together, then
    soft: a hard limit below the current soft one could not be set alone). A failure ends the run with 125."""
    lines = []
    for key, value in sysctls:
        path = "/proc/sys/" + key.replace(".", "/")
        lines.append(f"    printf '%s\\n' {shlex.quote(value)} > {shlex.quote(path)} || "
                     f"{{ echo {shlex.quote(f'isobox: cannot set sysctl {key}')} >&2; exit 125; }}")
    for ulimit in ulimits:
        letter, shift = _ULIMIT_LETTERS[ulimit.name]
        lines.append(f"    ulimit -{letter} {_limit(ulimit.hard, shift)} && ulimit -S -{letter} "
                     f"{_limit(ulimit.soft, shift)} || {{ echo 'isobox: cannot set ulimit {ulimit.name}' >&2; "
                     "exit 125; }")
    return lines


# Run inside the image root (nsenter's chroot) by the initramfs's own busybox, reached as /proc/1/root/bin/busybox
# (as setpriv above): the command is looked up in the workload's PATH as the container runtime would, so a
# missing or unusable command is reported in the runtime's words with the shell's exit codes (127, 126), not in
# nsenter's. Applets are not taken for commands: only files on disk count.
_COMMAND_CHECK = r"""c=$1
case $c in
*/*) p=$c ;;
*) p=; IFS=:; for d in $PATH; do [ -f "$d/$c" ] && [ -x "$d/$c" ] && { p=$d/$c; break; }; done; unset IFS
   [ -n "$p" ] || { echo "exec: \"$c\": executable file not found in \$PATH" >&2; exit 127; } ;;
esac
[ -e "$p" ] || { echo "exec: \"$c\": stat $c: no such file or directory" >&2; exit 127; }
[ -f "$p" ] && [ -x "$p" ] || { echo "exec: \"$c\": permission denied" >&2; exit 126; }"""


def command_check(argv0: str, env: tuple[tuple[str, str], ...], cwd: str) -> str:
    """The line that checks the workload's command before it is run (see _COMMAND_CHECK)."""
    path = dict(env).get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    words = ["env", "-i", shlex.quote(f"PATH={path}"), "/bin/nsenter", shlex.quote(f"-r{GUEST_ROOT}"),
             shlex.quote(f"-w{GUEST_ROOT}{cwd}"), "-F", "--", "/proc/1/root/bin/busybox", "sh", "-c",
             shlex.quote(_COMMAND_CHECK), "isobox-check", shlex.quote(argv0)]
    return " ".join(words) + " || exit $?"


def run_script(
    *,
    hostname: str,
    argv: tuple[str, ...],
    env: tuple[tuple[str, str], ...],
    cwd: str,
    user: ResolvedUser,
    interactive: bool = False,
    tty: bool = False,
    network: GuestNetwork | None = None,
    mounts: list[str] | None = None,
    ulimits: tuple[Ulimit, ...] = (),
    sysctls: tuple[tuple[str, str], ...] = (),
    shm_size_bytes: int | None = None,
) -> str:
    """The fw_cfg file opt/isobox/run: variables for init, isobox_network, isobox_mounts (made by
    drivers/vm/volumes.guest_lines) and isobox_workload."""
    lines = [
        "# isobox run script (generated; sourced by the guest init)",
        f"ISOBOX_HOSTNAME={shlex.quote(hostname)}",
        f"ISOBOX_CWD={shlex.quote(cwd)}",
        f"ISOBOX_STDIN={'/dev/port-isobox.stdin' if interactive else '/dev/null'}",
        f"ISOBOX_TTY={1 if tty else 0}",
        f"ISOBOX_SHM_SIZE={shm_size_bytes // 1024}k" if shm_size_bytes else "ISOBOX_SHM_SIZE=",
        *network_lines(network or GuestNetwork()),
        *(mounts or ["isobox_mounts() {", "    :", "}"]),
        "isobox_workload() {",
        *settings_lines(ulimits, sysctls),
        f"    {command_check(argv[0], env, cwd)}",
        f"    {command_line(argv, env, cwd, user, tty=tty)}",
        "}",
    ]
    return "\n".join(lines) + "\n"
