"""The options of `run` and `create`, named and typed as users give them (Docker's flags), and their pure
translation into a WorkloadSpec. The CLI's flags and the Python API's keyword arguments are both this one
RunOptions, so the two always mean the same."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from isobox.errors import InvalidArgumentError
from isobox.model import ids
from isobox.model.health import HealthCheck, check, parse_duration
from isobox.model.host_settings import (
    DeviceSpec,
    DnsConfig,
    HostSettings,
    Ulimit,
    parse_expose,
    parse_extra_host,
    parse_sysctl,
)
from isobox.model.logs import LogOptions
from isobox.model.mounts import parse_mount, parse_tmpfs, parse_volume
from isobox.model.network import PortSpec
from isobox.model.pull import PullPolicy
from isobox.model.spec import (
    Kind,
    Resources,
    Restart,
    Security,
    WorkloadSpec,
    check_spec,
    parse_env,
    parse_labels,
    parse_size,
)


@dataclass(frozen=True)
class RunOptions:
    name: str | None = None
    env: list[str] | None = None
    env_file: list[str] | None = None
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | list[str] | None = None  # the CLI's one word ("" clears); the Python API's list
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
    health_cmd: str | None = None
    health_interval: str | None = None
    health_timeout: str | None = None
    health_start_period: str | None = None
    health_start_interval: str | None = None
    health_retries: int | None = None
    no_healthcheck: bool = False
    add_host: list[str] | None = None
    dns: list[str] | None = None
    dns_search: list[str] | None = None
    dns_option: list[str] | None = None
    ulimit: list[str] | None = None
    platform: str | None = None
    pull: str = "missing"
    device: list[str] | None = None
    shm_size: str | None = None
    sysctl: list[str] | None = None
    stop_signal: str | None = None
    cidfile: str | None = None  # the CLI writes the id there (Docker's --cidfile)
    memory_swap: str | None = None
    memory_reservation: str | None = None
    expose: list[str] | None = None
    attach: list[str] | None = None  # the CLI's -a STDIN|STDOUT|STDERR: which streams a foreground run joins

    log_opt: list[str] | None = None


def _health(options: RunOptions) -> HealthCheck | None:
    """--health-* as the docker CLI reads them: a command is CMD-SHELL; --no-healthcheck excludes them all."""
    timing = (options.health_interval, options.health_timeout, options.health_start_period,
              options.health_start_interval, options.health_retries)
    if options.no_healthcheck:
        if options.health_cmd or any(value is not None for value in timing):
            raise InvalidArgumentError("--no-healthcheck conflicts with --health-* options", op="parse flags")
        return HealthCheck(test=("NONE",))
    if not options.health_cmd and all(value is None for value in timing):
        return None
    return check(
        test=("CMD-SHELL", options.health_cmd) if options.health_cmd else (),
        interval_s=parse_duration(options.health_interval or "0", "--health-interval"),
        timeout_s=parse_duration(options.health_timeout or "0", "--health-timeout"),
        start_period_s=parse_duration(options.health_start_period or "0", "--health-start-period"),
        start_interval_s=parse_duration(options.health_start_interval or "0", "--health-start-interval"),
        retries=options.health_retries or 0, what="--health-*",
    )


ATTACHABLE = ("stdin", "stdout", "stderr")


def pull_policy(text: str) -> PullPolicy:
    """--pull always|missing|never."""
    try:
        return PullPolicy(text.lower())
    except ValueError:
        raise InvalidArgumentError(f"invalid --pull {text!r}: always, missing or never", op="parse --pull") from None


def attached_streams(values: list[str] | None) -> frozenset[str]:
    """-a STDIN|STDOUT|STDERR (repeatable, any case); none given: stdout and stderr (and stdin with -i)."""
    chosen = frozenset(v.lower() for v in values or ())
    unknown = chosen - set(ATTACHABLE)
    if unknown:
        raise InvalidArgumentError(f"invalid -a {', '.join(sorted(unknown))}: STDIN, STDOUT or STDERR",
                                   op="parse --attach")
    return chosen


_LABEL_KEYS = ("user", "role", "type", "level", "disable", "filetype", "nested")


LOG_OPTION_KEYS = ("max-size", "max-file")


def parse_log_options(items: list[str] | tuple[str, ...]) -> LogOptions:
    """`--log-opt KEY=VALUE` items, Docker's json-file keys and rules (max-file only with max-size)."""
    given: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise InvalidArgumentError(f"invalid --log-opt {item!r}: use KEY=VALUE", op="parse --log-opt")
        if key not in LOG_OPTION_KEYS:
            known = ", ".join(LOG_OPTION_KEYS)
            raise InvalidArgumentError(f"unknown log opt {key!r} (isobox knows {known})", op="parse --log-opt")
        given[key] = value
    max_size = parse_size(given["max-size"], what="--log-opt max-size") if "max-size" in given else None
    if max_size is not None and max_size <= 0:
        raise InvalidArgumentError("--log-opt max-size must be a positive size", op="parse --log-opt")
    max_file = 1
    if "max-file" in given:
        text = given["max-file"]
        if not text.isdigit() or int(text) < 1:
            raise InvalidArgumentError(f"invalid --log-opt max-file {text!r}: a number from 1", op="parse --log-opt")
        max_file = int(text)
        if max_file > 1 and max_size is None:
            raise InvalidArgumentError("--log-opt max-file needs max-size", op="parse --log-opt")
    return LogOptions(max_size_bytes=max_size, max_file=max_file)


def _pids_limit(value: int | None) -> int | None:
    """Docker's -1 is "unlimited" (None here); 0 and other negatives are refused by check_resources."""
    return None if value == -1 else value


def _security(options: RunOptions) -> Security:
    seccomp: str | None = None
    no_new_privs = True
    apparmor: str | None = None
    labels: list[str] = []
    for option in options.security_opt or []:
        # apparmor=P and label=L, and the older apparmor:P and label:L forms Docker still takes
        spelled = option.replace(":", "=", 1) if option.startswith(("apparmor:", "label:")) else option
        key, _, value = spelled.partition("=")
        if key == "seccomp" and value:
            seccomp = value
        elif key == "no-new-privileges":
            no_new_privs = value.lower() not in ("false", "0", "no")
        elif key == "apparmor" and value:
            apparmor = value
        elif key == "label" and value.partition(":")[0] in _LABEL_KEYS:
            labels.append(value)
        else:
            raise InvalidArgumentError(
                f"unknown --security-opt {option!r} (seccomp=, no-new-privileges, apparmor=, label=)",
                op="parse --security-opt")
    if options.userns not in ("", "host", "auto"):
        raise InvalidArgumentError(f"invalid --userns {options.userns!r}: use auto or host", op="parse --userns")
    return Security(
        userns="" if options.userns == "host" else options.userns,
        privileged=options.privileged,
        cap_add=tuple(options.cap_add or ()),
        cap_drop=tuple(options.cap_drop or ()),
        no_new_privileges=no_new_privs,
        seccomp_profile=seccomp,
        read_only=options.read_only,
        apparmor_profile=apparmor,
        selinux_label=tuple(labels),
    )


def _entrypoint(value: str | list[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) and value else tuple(value) if isinstance(value, list) else ()


def to_spec(
    image: str,
    command: list[str] | tuple[str, ...],
    options: RunOptions,
    *,
    env_file_lines: tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> WorkloadSpec:
    """The WorkloadSpec these options ask for. ``env_file_lines``: the KEY=VALUE lines of the --env-file
    files (read by the caller); ``environ``: where a bare `-e KEY` takes its value from."""
    if options.vm and options.container:
        raise InvalidArgumentError("--vm and --container exclude each other", op="parse flags")
    spec = WorkloadSpec(
        image=image,
        command=tuple(command),
        kind=Kind.VM if options.vm else Kind.CONTAINER,
        kind_by_policy=not (options.vm or options.container),
        name=options.name or ids.random_name(),
        entrypoint=_entrypoint(options.entrypoint),
        env=parse_env([*env_file_lines, *(options.env or [])], dict(environ or {})),
        workdir=options.workdir,
        user=options.user,
        hostname=options.hostname,
        tty=options.tty,
        interactive=options.interactive,
        init=options.init,
        remove=options.rm,
        labels=parse_labels(options.label or []),
        resources=_resources(options),
        security=_security(options),
        restart=Restart.parse(options.restart),
        stop_timeout_s=options.stop_timeout,
        mounts=tuple(
            [parse_volume(v) for v in options.volume or []]
            + [parse_mount(m) for m in options.mount or []]
            + [parse_tmpfs(t) for t in options.tmpfs or []]
        ),
        networks=tuple(options.network or ()),
        publish=tuple(PortSpec.parse(p) for p in options.publish or []),
        publish_all=options.publish_all,
        ip=options.ip,
        network_aliases=tuple(options.network_alias or ()),
        health=_health(options),
        host=_host_settings(options),
        expose=tuple(port for text in options.expose or () for port in parse_expose(text)),
        platform=options.platform or None,
        stop_signal=options.stop_signal or None,
        log=parse_log_options(options.log_opt or ()),
    )
    check_spec(spec)
    return spec


def _size(text: str | None, what: str) -> int | None:
    return parse_size(text, what=what) if text else None


def _resources(options: RunOptions) -> Resources:
    memory = _size(options.memory, "memory")
    swap: int | None = None
    if options.memory_swap:
        if memory is None:
            raise InvalidArgumentError("--memory-swap needs --memory: it is memory and swap together",
                                       op="parse --memory-swap")
        swap = -1 if options.memory_swap.strip() == "-1" else parse_size(options.memory_swap, what="memory-swap")
        if swap != -1 and swap < memory:
            raise InvalidArgumentError("--memory-swap is memory and swap together: it may not be below --memory",
                                       op="parse --memory-swap")
    reservation = _size(options.memory_reservation, "memory-reservation")
    if reservation is not None and memory is not None and reservation > memory:
        raise InvalidArgumentError("--memory-reservation is a soft limit below --memory",
                                   op="parse --memory-reservation")
    return Resources(memory_bytes=memory, cpus=options.cpus, cpu_shares=options.cpu_shares,
                     pids_limit=_pids_limit(options.pids_limit), cpuset_cpus=options.cpuset_cpus,
                     memory_swap_bytes=swap,
                     memory_reservation_bytes=reservation)


def _host_settings(options: RunOptions) -> HostSettings:
    host_network = "host" in (options.network or ())
    return HostSettings(
        extra_hosts=tuple(parse_extra_host(h) for h in options.add_host or ()),
        dns=DnsConfig.parse(options.dns or (), options.dns_search or (), options.dns_option or ()),
        ulimits=tuple({u.name: u for u in (Ulimit.parse(text) for text in options.ulimit or ())}.values()),
        devices=tuple(DeviceSpec.parse(text) for text in options.device or ()),
        sysctls=tuple(dict(parse_sysctl(text, host_network=host_network) for text in options.sysctl or ()).items()),
        shm_size_bytes=_size(options.shm_size, "shm-size"),
    )
