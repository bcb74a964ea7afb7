"""The keyword arguments of `isobox.run` and `isobox.create`: Docker's run options, typed, accepting what
Docker's SDK accepts (a command as one string, a memory size as "64m" or bytes, env and labels as dicts)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import TypedDict

from isobox.errors import InvalidArgumentError
from isobox.model.options import RunOptions


class RunKwargs(TypedDict, total=False):
    """Every option of `run`/`create` (the CLI's flags of the same names)."""

    vm: bool | None  # True: a VM; False: a container; None (default): the isolation policy decides
    name: str
    env: Mapping[str, str] | Sequence[str]  # {"K": "V"} or ["K=V", "K"] (a bare K: from this process)
    env_file: Sequence[str]
    workdir: str
    user: str  # "name", "uid", "uid:gid", "name:group"
    entrypoint: str | Sequence[str]  # "" clears the image's
    hostname: str
    read_only: bool
    init: bool
    remove: bool  # --rm
    interactive: bool  # -i
    tty: bool  # -t
    memory: int | str  # bytes, or "64m", "1g"
    cpus: float
    cpu_shares: int
    pids_limit: int
    cpuset_cpus: str
    cap_add: Sequence[str]
    cap_drop: Sequence[str]
    security_opt: Sequence[str]
    privileged: bool
    restart: str  # "no", "on-failure[:N]", "always", "unless-stopped"
    labels: Mapping[str, str] | Sequence[str]
    stop_timeout: float
    volumes: Sequence[str]  # -v values: "data:/data", "/host:/dir:ro", "/anonymous"
    mounts: Sequence[str]  # --mount values
    tmpfs: Sequence[str]
    userns: str  # "auto"
    network: str | Sequence[str]
    publish: Sequence[str]  # -p values: "8080:80", "127.0.0.1:53:53/udp"
    ports: Mapping[str, int | str | None]  # Docker SDK style: {"80/tcp": 8080}
    publish_all: bool
    ip: str
    network_aliases: Sequence[str]
    policy: str  # an isolation-policy file for this call
    extra_hosts: Mapping[str, str] | Sequence[str]  # {"db": "10.0.0.5"} or ["db:10.0.0.5"] (--add-host)
    dns: Sequence[str]
    dns_search: Sequence[str]
    dns_options: Sequence[str]
    ulimits: Mapping[str, int | tuple[int, int]] | Sequence[str]  # {"nofile": (1024, 2048)} or ["nofile=1024:2048"]
    platform: str  # the host's own only
    pull: str  # "missing" (default), "always" or "never"
    devices: Sequence[str]  # "/dev/fuse", "/dev/sdb:/dev/xvdb:rw" (containers only)
    shm_size: int | str  # bytes, or "128m"
    sysctls: Mapping[str, str] | Sequence[str]  # namespaced keys only
    stop_signal: str | int
    memory_swap: int | str  # memory and swap together; -1: unlimited swap (containers only)
    memory_reservation: int | str  # a soft limit (containers only)
    expose: Sequence[str]  # "9000", "7000-7010/udp"


def command_argv(command: str | Sequence[str] | None) -> list[str]:
    """A command as Docker's SDK takes it: a list of words, or one string split as a shell would."""
    if command is None:
        return []
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError as exc:
            raise InvalidArgumentError(f"cannot split command {command!r}: {exc}", op="parse command") from exc
    return list(command)


def _words(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _pairs(value: Mapping[str, str] | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return [f"{key}={item}" for key, item in value.items()]
    return list(value)


def _ports(ports: Mapping[str, int | str | None] | None) -> list[str]:
    published = []
    for container, host in (ports or {}).items():
        published.append(str(container) if host is None else f"{host}:{container}")
    return published


def _hosts(value: Mapping[str, str] | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [f"{name}:{address}" for name, address in value.items()] if isinstance(value, Mapping) else list(value)


def _ulimits(value: Mapping[str, int | tuple[int, int]] | Sequence[str] | None) -> list[str] | None:
    if value is None or not isinstance(value, Mapping):
        return None if value is None else list(value)
    texts = []
    for name, limit in value.items():
        soft, hard = limit if isinstance(limit, tuple) else (limit, limit)
        texts.append(f"{name}={soft}:{hard}")
    return texts


def _text(value: int | str | None) -> str | None:
    return None if value is None else str(value)


def run_options(kwargs: RunKwargs) -> RunOptions:
    entrypoint = kwargs.get("entrypoint")
    memory = kwargs.get("memory")
    vm = kwargs.get("vm")
    return RunOptions(
        name=kwargs.get("name"),
        env=_pairs(kwargs.get("env")),
        env_file=_words(kwargs.get("env_file")),
        workdir=kwargs.get("workdir"),
        user=kwargs.get("user"),
        entrypoint=None if entrypoint is None else command_argv(entrypoint),  # a string splits, as Docker's SDK
        hostname=kwargs.get("hostname"),
        read_only=kwargs.get("read_only", False),
        init=kwargs.get("init", False),
        rm=kwargs.get("remove", False),
        interactive=kwargs.get("interactive", False),
        tty=kwargs.get("tty", False),
        memory=None if memory is None else str(memory),
        cpus=kwargs.get("cpus"),
        cpu_shares=kwargs.get("cpu_shares"),
        pids_limit=kwargs.get("pids_limit"),
        cpuset_cpus=kwargs.get("cpuset_cpus"),
        cap_add=_words(kwargs.get("cap_add")),
        cap_drop=_words(kwargs.get("cap_drop")),
        security_opt=_words(kwargs.get("security_opt")),
        privileged=kwargs.get("privileged", False),
        restart=kwargs.get("restart", "no"),
        label=_pairs(kwargs.get("labels")),
        vm=vm is True,
        container=vm is False,
        policy=kwargs.get("policy"),
        stop_timeout=kwargs.get("stop_timeout", 10.0),
        volume=_words(kwargs.get("volumes")),
        mount=_words(kwargs.get("mounts")),
        tmpfs=_words(kwargs.get("tmpfs")),
        userns=kwargs.get("userns", ""),
        network=_words(kwargs.get("network")),
        publish=[*(_words(kwargs.get("publish")) or []), *_ports(kwargs.get("ports"))],
        publish_all=kwargs.get("publish_all", False),
        ip=kwargs.get("ip"),
        network_alias=_words(kwargs.get("network_aliases")),
        add_host=_hosts(kwargs.get("extra_hosts")),
        dns=_words(kwargs.get("dns")),
        dns_search=_words(kwargs.get("dns_search")),
        dns_option=_words(kwargs.get("dns_options")),
        ulimit=_ulimits(kwargs.get("ulimits")),
        platform=kwargs.get("platform"),
        pull=kwargs.get("pull", "missing"),
        device=_words(kwargs.get("devices")),
        shm_size=_text(kwargs.get("shm_size")),
        sysctl=_pairs(kwargs.get("sysctls")),
        stop_signal=_text(kwargs.get("stop_signal")),
        memory_swap=_text(kwargs.get("memory_swap")),
        memory_reservation=_text(kwargs.get("memory_reservation")),
        expose=_words(kwargs.get("expose")),
    )
