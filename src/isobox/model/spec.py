"""What the user asked for: a WorkloadSpec, before anything is resolved against an image or the host."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from isobox.errors import InvalidArgumentError
from isobox.model.health import HealthCheck
from isobox.model.host_settings import HostSettings
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


@dataclass(frozen=True)
class Resources:
    memory_bytes: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    cpuset_cpus: str | None = None
    memory_swap_bytes: int | None = None  # memory + swap (Docker's --memory-swap); -1: unlimited swap
    memory_reservation_bytes: int | None = None  # a soft limit the kernel reclaims towards under pressure


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
