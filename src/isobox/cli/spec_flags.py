"""The flags shared by `run` and `create` (Docker's names), turned into a WorkloadSpec.

Typer has no option groups, so `with_run_flags` adds these parameters to a command's signature and
hands them to it as one RunFlags value: one definition for both commands.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from isobox.errors import InvalidArgumentError
from isobox.model import ids
from isobox.model.mounts import parse_mount, parse_tmpfs, parse_volume
from isobox.model.network import PortSpec
from isobox.model.spec import (
    Kind,
    Resources,
    Restart,
    Security,
    WorkloadSpec,
    parse_env,
    parse_env_file,
    parse_labels,
    parse_size,
)


@dataclass(frozen=True)
class Flag:
    """One option: its default, its names, its help; plain data, so the fast path needs no typer."""

    default: Any
    names: tuple[str, ...]
    help: str


def _flag(default: Any, *names: str, help: str) -> Flag:
    return Flag(default, names, help)


@dataclass(frozen=True)
class RunFlags:
    name: str | None = None
    env: list[str] | None = None
    env_file: list[str] | None = None
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None
    hostname: str | None = None
    read_only: bool = False
    init: bool = False
    rm: bool = False
    interactive: bool = False
    tty: bool = False
    memory: str | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    cpuset_cpus: str | None = None
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    security_opt: list[str] | None = None
    privileged: bool = False
    restart: str = "no"
    label: list[str] | None = None
    vm: bool = False
    container: bool = False
    policy: str | None = None
    stop_timeout: float = 10.0
    volume: list[str] | None = None
    mount: list[str] | None = None
    tmpfs: list[str] | None = None
    userns: str = ""
    network: list[str] | None = None
    publish: list[str] | None = None
    publish_all: bool = False
    ip: str | None = None
    network_alias: list[str] | None = None


_OPTIONS: dict[str, tuple[Any, Flag]] = {
    "name": (str | None, _flag(None, "--name", help="Name of the workload.")),
    "env": (list[str] | None, _flag(None, "-e", "--env", help="KEY=VALUE (or KEY from your environment).")),
    "env_file": (list[str] | None, _flag(None, "--env-file", help="File of KEY=VALUE lines.")),
    "workdir": (str | None, _flag(None, "-w", "--workdir", help="Working directory.")),
    "user": (str | None, _flag(None, "-u", "--user", help="user[:group], names or ids.")),
    "entrypoint": (str | None, _flag(None, "--entrypoint", help="Override the image's entrypoint.")),
    "hostname": (str | None, _flag(None, "--hostname", help="Hostname inside.")),
    "read_only": (bool, _flag(False, "--read-only", help="Read-only root filesystem.")),
    "init": (bool, _flag(False, "--init", help="Run an init (tini) as pid 1 that reaps zombies.")),
    "rm": (bool, _flag(False, "--rm", help="Remove the workload when it exits.")),
    "interactive": (bool, _flag(False, "-i", "--interactive", help="Keep stdin open.")),
    "tty": (bool, _flag(False, "-t", "--tty", help="Allocate a terminal.")),
    "memory": (str | None, _flag(None, "-m", "--memory", help="Memory limit, e.g. 256m.")),
    "cpus": (float | None, _flag(None, "--cpus", help="CPUs (containers: quota; VMs: vCPUs).")),
    "cpu_shares": (int | None, _flag(None, "--cpu-shares", help="Relative CPU weight.")),
    "pids_limit": (int | None, _flag(None, "--pids-limit", help="Maximum number of processes.")),
    "cpuset_cpus": (str | None, _flag(None, "--cpuset-cpus", help="CPUs allowed, e.g. 0-1.")),
    "cap_add": (list[str] | None, _flag(None, "--cap-add", help="Add a capability.")),
    "cap_drop": (list[str] | None, _flag(None, "--cap-drop", help="Drop a capability.")),
    "security_opt": (
        list[str] | None,
        _flag(None, "--security-opt", help="seccomp=unconfined|PROFILE.json, no-new-privileges[=false]."),
    ),
    "privileged": (bool, _flag(False, "--privileged", help="All capabilities, no seccomp, all devices.")),
    "restart": (str, _flag("no", "--restart", help="no | on-failure[:N] | always | unless-stopped.")),
    "label": (list[str] | None, _flag(None, "-l", "--label", help="KEY=VALUE label.")),
    "vm": (bool, _flag(False, "--vm", help="Run as a virtual machine (own kernel) instead of a container.")),
    "container": (
        bool,
        _flag(False, "--container", help="Run as a container (without --vm/--container the policy chooses)."),
    ),
    "policy": (
        str | None,
        _flag(None, "--policy", help="Isolation policy file (default $ISOBOX_POLICY, /etc/isobox/policy.toml)."),
    ),
    "stop_timeout": (float, _flag(10.0, "--stop-timeout", help="Seconds between stop signal and SIGKILL.")),
    "volume": (
        list[str] | None,
        _flag(None, "-v", "--volume", help="NAME:/path[:ro], /host/path:/path[:ro], or /path (anonymous volume)."),
    ),
    "mount": (
        list[str] | None,
        _flag(None, "--mount", help="type=volume|bind|tmpfs,source=…,target=…[,readonly]."),
    ),
    "tmpfs": (list[str] | None, _flag(None, "--tmpfs", help="/path[:size=64m,mode=1777].")),
    "userns": (str, _flag("", "--userns", help="auto: root inside is an unprivileged uid range outside.")),
    "network": (
        list[str] | None,
        _flag(None, "--network", "--net", help="Network to join (repeatable), or none | host."),
    ),
    "publish": (
        list[str] | None,
        _flag(None, "-p", "--publish", help="[hostip:][hostport:]port[/tcp|udp] to the host."),
    ),
    "publish_all": (bool, _flag(False, "-P", "--publish-all", help="Publish every EXPOSEd port.")),
    "ip": (str | None, _flag(None, "--ip", help="IPv4 address on the first network.")),
    "network_alias": (list[str] | None, _flag(None, "--network-alias", help="Extra DNS name.")),
}
assert set(_OPTIONS) == {f.name for f in fields(RunFlags)}


def with_run_flags(func: Callable[..., None]) -> Callable[..., None]:
    signature = inspect.signature(func)
    kept = [p for p in signature.parameters.values() if p.name != "flags"]
    import typer

    added = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(flag.default, *flag.names, help=flag.help),
            annotation=annotation,
        )
        for name, (annotation, flag) in _OPTIONS.items()
    ]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> None:
        values = {name: kwargs.pop(name) for name in _OPTIONS}
        func(**kwargs, flags=RunFlags(**values))

    wrapper.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
    hints = {k: v for k, v in getattr(func, "__annotations__", {}).items() if k != "flags"}
    wrapper.__annotations__ = {**hints, **{name: annotation for name, (annotation, _) in _OPTIONS.items()}}
    return wrapper


def _security(flags: RunFlags) -> Security:
    seccomp: str | None = None
    no_new_privs = True
    for option in flags.security_opt or []:
        key, _, value = option.partition("=")
        if key == "seccomp" and value:
            seccomp = value
        elif key == "no-new-privileges":
            no_new_privs = value.lower() not in ("false", "0", "no")
        else:
            raise InvalidArgumentError(f"unknown --security-opt {option!r}", op="parse --security-opt")
    if flags.userns not in ("", "host", "auto"):
        raise InvalidArgumentError(f"invalid --userns {flags.userns!r}: use auto or host", op="parse --userns")
    return Security(
        userns="" if flags.userns == "host" else flags.userns,
        privileged=flags.privileged,
        cap_add=tuple(flags.cap_add or ()),
        cap_drop=tuple(flags.cap_drop or ()),
        no_new_privileges=no_new_privs,
        seccomp_profile=seccomp,
        read_only=flags.read_only,
    )


def build_spec(image: str, command: list[str], flags: RunFlags) -> WorkloadSpec:
    env_items: list[str] = []
    for path in flags.env_file or []:
        try:
            env_items += parse_env_file(Path(path).read_text(), path)
        except OSError as exc:
            raise InvalidArgumentError(
                f"cannot read env file: {exc.strerror}", op="read --env-file", path=path
            ) from exc
    env_items += flags.env or []
    if flags.vm and flags.container:
        raise InvalidArgumentError("--vm and --container exclude each other", op="parse flags")
    if flags.policy:
        # The service reads the policy file named here, as --root sets ISOBOX_ROOT for it.
        os.environ["ISOBOX_POLICY"] = flags.policy
    return WorkloadSpec(
        image=image,
        command=tuple(command),
        kind=Kind.VM if flags.vm else Kind.CONTAINER,
        kind_by_policy=not (flags.vm or flags.container),
        name=flags.name or ids.random_name(),
        entrypoint=None if flags.entrypoint is None else tuple(x for x in [flags.entrypoint] if x),
        env=parse_env(env_items, dict(os.environ)),
        workdir=flags.workdir,
        user=flags.user,
        hostname=flags.hostname,
        tty=flags.tty,
        interactive=flags.interactive,
        init=flags.init,
        remove=flags.rm,
        labels=parse_labels(flags.label or []),
        resources=Resources(
            memory_bytes=parse_size(flags.memory, what="memory") if flags.memory else None,
            cpus=flags.cpus,
            cpu_shares=flags.cpu_shares,
            pids_limit=flags.pids_limit,
            cpuset_cpus=flags.cpuset_cpus,
        ),
        security=_security(flags),
        restart=Restart.parse(flags.restart),
        stop_timeout_s=flags.stop_timeout,
        mounts=tuple(
            [parse_volume(v) for v in flags.volume or []]
            + [parse_mount(m) for m in flags.mount or []]
            + [parse_tmpfs(t) for t in flags.tmpfs or []]
        ),
        networks=tuple(flags.network or ()),
        publish=tuple(PortSpec.parse(p) for p in flags.publish or []),
        publish_all=flags.publish_all,
        ip=flags.ip,
        network_aliases=tuple(flags.network_alias or ()),
    )
