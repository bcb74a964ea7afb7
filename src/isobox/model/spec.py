"""What the user asked for: a WorkloadSpec, before anything is resolved against an image or the host."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field

from isobox.errors import InvalidArgumentError
from isobox.model.health import HealthCheck
from isobox.model.host_settings import HostSettings
from isobox.model.logs import LogOptions
from isobox.model.mounts import MountSpec
from isobox.model.network import PortSpec


class Kind(enum.StrEnum):
    CONTAINER = "container"
    VM = "vm"


class RestartPolicy(enum.StrEnum):
    NO = "no"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"
    UNLESS_STOPPED = "unless-stopped"


@dataclass(frozen=True)
class Restart:
    policy: RestartPolicy = RestartPolicy.NO
    max_retries: int = 0

    @classmethod
    def parse(cls, text: str) -> Restart:
        name, _, count = text.partition(":")
        try:
            policy = RestartPolicy(name)
        except ValueError:
            choices = ", ".join(p.value for p in RestartPolicy)
            raise InvalidArgumentError(
                f"invalid restart policy {text!r}: choose {choices}", op="parse --restart"
            ) from None
        if count and policy is not RestartPolicy.ON_FAILURE:
            raise InvalidArgumentError(f"restart policy {name!r} takes no retry count", op="parse --restart")
        retries = 0
        if count:
            if not count.isdigit():
                raise InvalidArgumentError(f"invalid retry count {count!r}", op="parse --restart")
            retries = int(count)
        return cls(policy=policy, max_retries=retries)


# Docker's restart back-off (restartmanager): 100 ms, doubled at each restart, at most a minute, and back to
# 100 ms once a run lasted 10 s.
RESTART_FIRST_DELAY_S = 0.1
RESTART_MAX_DELAY_S = 60.0
RESTART_RESET_AFTER_S = 10.0


def next_restart_delay_s(previous_s: float, ran_s: float) -> float:
    """The delay before the next restart, after one of ``previous_s`` and a run of ``ran_s`` seconds."""
    if ran_s >= RESTART_RESET_AFTER_S or previous_s <= 0:
        return RESTART_FIRST_DELAY_S
    return min(previous_s * 2, RESTART_MAX_DELAY_S)


@dataclass(frozen=True)
class Resources:
    memory_bytes: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    cpuset_cpus: str | None = None
    memory_swap_bytes: int | None = None  # memory + swap (Docker's --memory-swap); -1: unlimited swap
    memory_reservation_bytes: int | None = None  # a soft limit the kernel reclaims towards under pressure


MIN_MEMORY_BYTES = 6 * 1024 * 1024  # Docker's minimum (daemon/daemon_unix.go, linuxMinMemory)
INT64_MAX = 2**63 - 1  # the OCI runtime spec's limits are int64
HOST_NAME_MAX = 64  # sethostname(2): longer names fail with EINVAL when the container starts
_HOSTNAME = re.compile(r"^[^\s\x00]+$")  # the kernel takes any bytes; a space or NUL is surely a mistake
ID_MAX = 2**32 - 2  # uid_t/gid_t: (uid_t)-1 is "no id" (setresuid(2))
MIN_CPUS = 0.01  # Docker's --cpus range starts here (1e7 NanoCPUs)


def check_resources(resources: Resources, *, host_cpus: int | None = None,
                    online_cpus: frozenset[int] | None = None) -> None:
    """Refuse limits that mean nothing, or, given the host's CPUs, more than it has; Docker's rules and
    words. Without the host's facts only what is wrong anywhere is checked (the flags' own parsing)."""
    cpus = resources.cpus
    if cpus is not None:
        if not math.isfinite(cpus) or cpus < MIN_CPUS:
            upper = f"{host_cpus}.00" if host_cpus else "the number of CPUs"
            raise InvalidArgumentError(
                f"invalid --cpus {cpus}: the range of CPUs is from {MIN_CPUS} to {upper}", op="parse --cpus"
            )
        if host_cpus is not None and cpus > host_cpus:
            raise InvalidArgumentError(
                f"range of CPUs is from {MIN_CPUS} to {host_cpus}.00, as there are only {host_cpus} CPUs available",
                op="parse --cpus",
            )
    if resources.memory_bytes is not None and resources.memory_bytes < MIN_MEMORY_BYTES:
        raise InvalidArgumentError(
            f"minimum memory limit allowed is 6MB (--memory {resources.memory_bytes} bytes)", op="parse --memory"
        )
    if resources.memory_bytes is not None and resources.memory_bytes > INT64_MAX:
        raise InvalidArgumentError(f"--memory {resources.memory_bytes} bytes is beyond any limit", op="parse --memory")
    if resources.cpu_shares is not None and resources.cpu_shares > INT64_MAX:
        raise InvalidArgumentError(f"invalid --cpu-shares {resources.cpu_shares}", op="parse --cpu-shares")
    if resources.pids_limit is not None and resources.pids_limit > INT64_MAX:
        raise InvalidArgumentError(f"invalid --pids-limit {resources.pids_limit}", op="parse --pids-limit")
    if resources.pids_limit is not None and resources.pids_limit <= 0:
        raise InvalidArgumentError(
            f"invalid --pids-limit {resources.pids_limit}: a positive number, or -1 for unlimited",
            op="parse --pids-limit",
        )
    if resources.cpu_shares is not None and resources.cpu_shares < 0:
        raise InvalidArgumentError(f"invalid --cpu-shares {resources.cpu_shares}", op="parse --cpu-shares")
    if resources.cpuset_cpus is not None:
        wanted = parse_cpuset(resources.cpuset_cpus)
        if online_cpus is not None and not wanted <= online_cpus:
            raise InvalidArgumentError(
                f"requested CPUs are not available - requested {resources.cpuset_cpus}, available: "
                f"{format_cpuset(online_cpus)}",
                op="parse --cpuset-cpus",
            )


def check_spec(spec: WorkloadSpec) -> None:
    """What is wrong with a spec anywhere (the host's own limits are checked by the service): refused
    before anything is made, rather than by the runtime once a workload exists."""
    check_resources(spec.resources)
    if spec.hostname is not None and (len(spec.hostname) > HOST_NAME_MAX or not _HOSTNAME.match(spec.hostname)):
        shown = spec.hostname if len(spec.hostname) <= 40 else spec.hostname[:40] + "…"
        raise InvalidArgumentError(
            f"invalid --hostname {shown!r}: at most {HOST_NAME_MAX} characters, without spaces",
            op="parse --hostname",
        )
    if not math.isfinite(spec.stop_timeout_s) or spec.stop_timeout_s < 0:
        raise InvalidArgumentError(f"invalid --stop-timeout {spec.stop_timeout_s}: seconds, 0 or more",
                                   op="parse --stop-timeout")
    for part in (spec.user or "").split(":"):
        if part.isdigit() and int(part) > ID_MAX:
            raise InvalidArgumentError(f"invalid --user {spec.user!r}: ids go up to {ID_MAX}", op="parse --user")


def parse_cpuset(text: str) -> frozenset[int]:
    """A cpuset list (cpuset(7): "0-2,5"), as the kernel reads cpuset.cpus and /sys/…/cpu/online."""
    found: set[int] = set()
    for part in text.strip().split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise InvalidArgumentError(f"invalid value {text!r} for cpuset cpus", op="parse --cpuset-cpus")
        first, last = int(low), int(high) if dash else int(low)
        if last < first or last >= 8192:  # the kernel's NR_CPUS ceiling
            raise InvalidArgumentError(f"invalid value {text!r} for cpuset cpus", op="parse --cpuset-cpus")
        found.update(range(first, last + 1))
    return frozenset(found)


def format_cpuset(cpus: frozenset[int]) -> str:
    """The kernel's notation for a set of CPUs: "0-3,6"."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


@dataclass(frozen=True)
class Security:
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = True
    seccomp_profile: str | None = None  # None: the default profile; "unconfined": none; else a path
    read_only: bool = False
    userns: str = ""  # "" or "host": the host's user namespace; "auto": a private uid/gid range
    apparmor_profile: str | None = None  # --security-opt apparmor=PROFILE (applied where the host has AppArmor)
    selinux_label: tuple[str, ...] = ()  # --security-opt label=user:U|role:R|type:T|level:L|disable


@dataclass(frozen=True)
class WorkloadSpec:
    image: str
    command: tuple[str, ...] = ()
    kind: Kind = Kind.CONTAINER
    kind_by_policy: bool = False  # neither --vm nor --container: the isolation policy chooses
    name: str | None = None
    entrypoint: tuple[str, ...] | None = None  # None: the image's; () clears it
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    tty: bool = False
    interactive: bool = False
    init: bool = False
    remove: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    resources: Resources = field(default_factory=Resources)
    security: Security = field(default_factory=Security)
    restart: Restart = field(default_factory=Restart)
    stop_timeout_s: float = 10.0
    stop_signal: str | None = None  # None: the image's STOPSIGNAL, else SIGTERM
    mounts: tuple[MountSpec, ...] = ()
    networks: tuple[str, ...] = ()  # network names, or ("none",) / ("host",); () is the default network
    publish: tuple[PortSpec, ...] = ()
    publish_all: bool = False
    ip: str | None = None  # address on the first network
    network_aliases: tuple[str, ...] = ()
    health: HealthCheck | None = None  # merged with the image's HEALTHCHECK; a NONE test disables it
    host: HostSettings = field(default_factory=HostSettings)  # --add-host, --dns*, --ulimit, --device, --sysctl
    expose: tuple[str, ...] = ()  # --expose, as ExposedPorts keys ("80/tcp"), added to the image's
    platform: str | None = None  # --platform: the host's own (checked by the service), else refused
    log: LogOptions = field(default_factory=LogOptions)


_ENV_KEY = re.compile(r"^[^=\0]+$")


def parse_env(items: list[str] | tuple[str, ...], lookup: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """Parse ``KEY=VALUE`` items; a bare ``KEY`` takes its value from ``lookup`` (the caller's env), as Docker does."""
    result: list[tuple[str, str]] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not key or not _ENV_KEY.match(key) or "\0" in value:
            raise InvalidArgumentError(f"invalid environment variable {item!r}", op="parse --env")
        if not sep:
            if lookup is None or key not in lookup:
                continue
            value = lookup[key]
        result.append((key, value))
    return tuple(result)


def parse_env_file(text: str, source: str) -> tuple[str, ...]:
    """Lines of an --env-file: blank lines and '#' comments skipped."""
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\0" in line:
            raise InvalidArgumentError(f"NUL byte in env file line {raw!r}", op="read --env-file", path=source)
        lines.append(line)
    return tuple(lines)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str, *, what: str = "size") -> int:
    """'512m', '1g', '1024' → bytes (binary units, as Docker's --memory)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise InvalidArgumentError(f"invalid {what} {text!r}: use e.g. 512m, 1g", op=f"parse {what}")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def parse_labels(items: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    labels = []
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgumentError(f"invalid label {item!r}", op="parse --label")
        labels.append((key, value))
    return tuple(labels)
