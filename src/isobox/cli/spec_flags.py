"""The flags shared by `run` and `create` (Docker's names): RUN_OPTIONS, the one table both parsers of
these commands read (typer's, through `with_run_flags`, and the fast path's in cli/fast.py), each flag a
field of model.options.RunOptions.

Typer has no option groups, so `with_run_flags` adds these parameters to a command's signature and
hands them to it as one RunFlags value: one definition for both commands.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from isobox.model.options import RunOptions
from isobox.model.spec import WorkloadSpec


@dataclass(frozen=True)
class Flag:
    """One option: its default, its names, its help; plain data, so the fast path needs no typer."""

    default: Any
    names: tuple[str, ...]
    help: str
    metavar: str | None = None  # the word help shows for the value (None: a flag without one)


def _flag(default: Any, *names: str, help: str, metavar: str | None = None) -> Flag:
    return Flag(default, names, help, metavar)


RunFlags = RunOptions  # the flags of `run` and `create` are the Python API's RunOptions

RUN_OPTIONS: dict[str, tuple[Any, Flag]] = {
    "name": (str | None, _flag(None, "--name", help="Name of the workload.", metavar="NAME")),
    "env": (list[str] | None, _flag(None, "-e", "--env", help="KEY=VALUE (or KEY from your environment).",
                                    metavar="KEY=VALUE")),
    "env_file": (list[str] | None, _flag(None, "--env-file", help="File of KEY=VALUE lines.", metavar="FILE")),
    "workdir": (str | None, _flag(None, "-w", "--workdir", help="Working directory.", metavar="DIR")),
    "user": (str | None, _flag(None, "-u", "--user", help="user[:group], names or ids.", metavar="USER[:GROUP]")),
    "entrypoint": (str | None, _flag(None, "--entrypoint", help="Override the image's entrypoint.", metavar="COMMAND")),
    "hostname": (str | None, _flag(None, "--hostname", help="Hostname inside.", metavar="NAME")),
    "read_only": (bool, _flag(False, "--read-only", help="Read-only root filesystem.")),
    "init": (bool, _flag(False, "--init", help="Run an init (tini) as pid 1 that reaps zombies.")),
    "rm": (bool, _flag(False, "--rm", help="Remove the workload when it exits.")),
    "interactive": (bool, _flag(False, "-i", "--interactive", help="Keep stdin open.")),
    "tty": (bool, _flag(False, "-t", "--tty", help="Allocate a terminal.")),
    "memory": (str | None, _flag(None, "-m", "--memory", help="Memory limit, e.g. 256m.", metavar="SIZE")),
    "cpus": (float | None, _flag(None, "--cpus", help="CPUs (containers: quota; VMs: vCPUs).", metavar="NUMBER")),
    "cpu_shares": (int | None, _flag(None, "--cpu-shares", help="Relative CPU weight.", metavar="WEIGHT")),
    "pids_limit": (int | None, _flag(None, "--pids-limit", help="Maximum number of processes.", metavar="N")),
    "cpuset_cpus": (str | None, _flag(None, "--cpuset-cpus", help="CPUs allowed, e.g. 0-1.", metavar="CPUS")),
    "cap_add": (list[str] | None, _flag(None, "--cap-add", help="Add a capability.", metavar="CAP")),
    "cap_drop": (list[str] | None, _flag(None, "--cap-drop", help="Drop a capability.", metavar="CAP")),
    "security_opt": (
        list[str] | None,
        _flag(None, "--security-opt", metavar="OPTION",
              help="seccomp=unconfined|PROFILE.json, no-new-privileges[=false], apparmor=PROFILE, label=…"),
    ),
    "privileged": (bool, _flag(False, "--privileged", help="All capabilities, no seccomp, all devices.")),
    "restart": (str, _flag("no", "--restart", help="no | on-failure[:N] | always | unless-stopped.", metavar="POLICY")),
    "label": (list[str] | None, _flag(None, "-l", "--label", help="KEY=VALUE label.", metavar="KEY=VALUE")),
    "vm": (bool, _flag(False, "--vm", help="Run as a virtual machine (own kernel) instead of a container.")),
    "container": (
        bool,
        _flag(False, "--container", help="Run as a container (without --vm/--container the policy chooses)."),
    ),
    "policy": (
        str | None,
        _flag(None, "--policy", metavar="FILE",
              help="Isolation policy file (default $ISOBOX_POLICY, /etc/isobox/policy.toml)."),
    ),
    "stop_timeout": (float, _flag(10.0, "--stop-timeout", help="Seconds between stop signal and SIGKILL.",
                                  metavar="SECONDS")),
    "volume": (
        list[str] | None,
        _flag(None, "-v", "--volume", metavar="SRC:DST[:ro]",
              help="NAME:/path[:ro], /host/path:/path[:ro], ./relative:/path, or /path (anonymous volume)."),
    ),
    "mount": (
        list[str] | None,
        _flag(None, "--mount", metavar="KEY=VALUE,…", help="type=volume|bind|tmpfs,source=…,target=…[,readonly]."),
    ),
    "tmpfs": (list[str] | None, _flag(None, "--tmpfs", help="/path[:size=64m,mode=1777].", metavar="PATH[:OPTIONS]")),
    "userns": (str, _flag("", "--userns", metavar="auto|host",
                          help="auto: root inside is an unprivileged uid range outside.")),
    "network": (
        list[str] | None,
        _flag(None, "--network", "--net", metavar="NETWORK", help="Network to join (repeatable), or none | host."),
    ),
    "publish": (
        list[str] | None,
        _flag(None, "-p", "--publish", metavar="[IP:][HOSTPORT:]PORT",
              help="Publish a port to the host: [hostip:][hostport:]port[/tcp|udp]."),
    ),
    "publish_all": (bool, _flag(False, "-P", "--publish-all", help="Publish every EXPOSEd port.")),
    "ip": (str | None, _flag(None, "--ip", help="IPv4 address on the first network.", metavar="IP")),
    "network_alias": (list[str] | None, _flag(None, "--network-alias", help="Extra DNS name.", metavar="NAME")),
    "add_host": (list[str] | None, _flag(None, "--add-host", metavar="NAME:IP",
                                         help="Add a line to /etc/hosts (IP may be host-gateway).")),
    "dns": (list[str] | None, _flag(None, "--dns", metavar="IP", help="DNS server (replaces the network's).")),
    "dns_search": (list[str] | None, _flag(None, "--dns-search", metavar="DOMAIN", help="DNS search domain.")),
    "dns_option": (list[str] | None, _flag(None, "--dns-option", metavar="OPTION", help="resolv.conf option.")),
    "ulimit": (list[str] | None, _flag(None, "--ulimit", metavar="NAME=SOFT[:HARD]",
                                       help="Resource limit, e.g. nofile=1024:2048 (-1: unlimited).")),
    "platform": (str | None, _flag(None, "--platform", metavar="OS/ARCH",
                                   help="Only this host's platform (isobox does not emulate others).")),
    "pull": (str, _flag("missing", "--pull", metavar="missing|always|never", help="When to pull the image.")),
    "device": (list[str] | None, _flag(None, "--device", metavar="HOST[:CONTAINER][:rwm]",
                                       help="A host device in the container (containers only).")),
    "shm_size": (str | None, _flag(None, "--shm-size", metavar="SIZE", help="Size of /dev/shm (default 64m).")),
    "sysctl": (list[str] | None, _flag(None, "--sysctl", metavar="KEY=VALUE",
                                       help="A namespaced kernel setting (net.*, kernel.shm*, kernel.msg*, "
                                            "kernel.sem, fs.mqueue.*).")),
    "stop_signal": (str | None, _flag(None, "--stop-signal", metavar="SIGNAL",
                                      help="Signal that stops it (default: the image's, else SIGTERM).")),
    "cidfile": (str | None, _flag(None, "--cidfile", metavar="FILE", help="Write the workload's id to FILE.")),
    "memory_swap": (str | None, _flag(None, "--memory-swap", metavar="SIZE",
                                      help="Memory and swap together (-1: unlimited swap); containers only.")),
    "memory_reservation": (str | None, _flag(None, "--memory-reservation", metavar="SIZE",
                                             help="Soft memory limit; containers only.")),
    "expose": (list[str] | None, _flag(None, "--expose", metavar="PORT[/PROTO]",
                                       help="Expose a port (or a range) without publishing it.")),
    "attach": (list[str] | None, _flag(None, "-a", "--attach", metavar="STDIN|STDOUT|STDERR",
                                       help="Streams to attach to (default: stdout and stderr).")),
    "log_opt": (list[str] | None, _flag(None, "--log-opt", metavar="KEY=VALUE",
                                        help="max-size=SIZE (rotate past it), max-file=N (files kept, default 1).")),
    "health_cmd": (str | None, _flag(None, "--health-cmd", help="Command to run to check health (with sh -c).")),
    "health_interval": (str | None, _flag(None, "--health-interval", help="Time between checks (default 30s).")),
    "health_timeout": (str | None, _flag(None, "--health-timeout", help="Longest a check may run (default 30s).")),
    "health_start_period": (
        str | None, _flag(None, "--health-start-period", help="Failures in this time after a start do not count."),
    ),
    "health_start_interval": (
        str | None, _flag(None, "--health-start-interval", help="Time between checks in the start period (5s)."),
    ),
    "health_retries": (int | None, _flag(None, "--health-retries", help="Failures in a row that make it unhealthy.")),
    "no_healthcheck": (bool, _flag(False, "--no-healthcheck", help="Run no health check (not even the image's).")),
}
assert set(RUN_OPTIONS) == {f.name for f in fields(RunFlags)}


def with_run_flags(func: Callable[..., None]) -> Callable[..., None]:
    signature = inspect.signature(func)
    kept = [p for p in signature.parameters.values() if p.name != "flags"]
    import typer

    added = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(flag.default, *flag.names, help=flag.help, metavar=flag.metavar,
                                 show_default=False),
            annotation=annotation,
        )
        for name, (annotation, flag) in RUN_OPTIONS.items()
    ]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> None:
        values = {name: kwargs.pop(name) for name in RUN_OPTIONS}
        func(**kwargs, flags=RunFlags(**values))

    wrapper.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
    hints = {k: v for k, v in getattr(func, "__annotations__", {}).items() if k != "flags"}
    wrapper.__annotations__ = {**hints, **{name: annotation for name, (annotation, _) in RUN_OPTIONS.items()}}
    return wrapper


def build_spec(image: str, command: list[str], flags: RunFlags) -> WorkloadSpec:
    if flags.policy:
        # The service reads the policy file named here, as --root sets ISOBOX_ROOT for it.
        os.environ["ISOBOX_POLICY"] = flags.policy
    from isobox.service.specs import build_spec as spec_of

    return spec_of(image, command, flags)
