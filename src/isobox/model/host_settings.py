"""Run flags that shape a workload's view of its host, as values (pure): --add-host, --dns*, --ulimit, --device,
--sysctl, --expose. Each parses Docker's syntax and refuses what Docker refuses, naming the flag."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from isobox.errors import InvalidArgumentError

HOST_GATEWAY = "host-gateway"  # --add-host NAME:host-gateway: the address of the workload's gateway (Docker's)
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$")


def parse_extra_host(text: str) -> tuple[str, str]:
    """--add-host NAME:IP (or NAME=IP, Docker 25's form); IP may be IPv6 (its colons are kept) or host-gateway."""
    name, sep, address = text.partition("=")
    if not sep:
        name, sep, address = text.partition(":")
    address = address.strip("[]")
    if not sep or not _HOSTNAME.match(name):
        raise InvalidArgumentError(f"invalid --add-host {text!r}: use NAME:IP", op="parse --add-host")
    if address != HOST_GATEWAY:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise InvalidArgumentError(f"invalid IP address in --add-host {text!r}", op="parse --add-host") from None
    return name, address


@dataclass(frozen=True)
class DnsConfig:
    """--dns, --dns-search, --dns-option: what replaces the nameserver, search and options lines."""

    servers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, servers: Iterable[str], search: Iterable[str], options: Iterable[str]) -> DnsConfig:
        checked = []
        for server in servers:
            try:
                checked.append(str(ipaddress.ip_address(server)))
            except ValueError:
                raise InvalidArgumentError(f"invalid --dns {server!r}: an IP address", op="parse --dns") from None
        for domain in search:
            if domain != "." and not _HOSTNAME.match(domain):
                raise InvalidArgumentError(f"invalid --dns-search {domain!r}", op="parse --dns-search")
        for option in options:
            if not option or any(c.isspace() for c in option):
                raise InvalidArgumentError(f"invalid --dns-option {option!r}", op="parse --dns-option")
        return cls(tuple(checked), tuple(search), tuple(options))


def hosts_with_extras(text: str, extra_hosts: Iterable[tuple[str, str]], gateway: str) -> str:
    """/etc/hosts with the --add-host lines after isobox's own (host-gateway: ``gateway``)."""
    lines = [f"{gateway if address == HOST_GATEWAY else address}\t{name}" for name, address in extra_hosts
             if address != HOST_GATEWAY or gateway]
    if not lines:
        return text
    return text + ("" if text.endswith("\n") or not text else "\n") + "\n".join(lines) + "\n"


def resolv_with(text: str, dns: DnsConfig) -> str:
    """resolv.conf with the --dns servers, --dns-search domains ("." clears them) and --dns-option options in
    place of its own lines of each kind (Docker's rule)."""
    lines = text.splitlines()
    if dns.servers:
        lines = [ln for ln in lines if not ln.startswith("nameserver")] + [f"nameserver {s}" for s in dns.servers]
    if dns.search:
        lines = [ln for ln in lines if not ln.startswith(("search", "domain"))]
        domains = [d for d in dns.search if d != "."]
        lines += [f"search {' '.join(domains)}"] if domains else []
    if dns.options:
        lines = [ln for ln in lines if not ln.startswith("options")] + [f"options {' '.join(dns.options)}"]
    result = "\n".join(lines)
    return result + "\n" if result else ""


# ---- ulimits ----------------------------------------------------------------------------------

# Docker's names (docker/go-units ulimit.go) and the RLIMIT_* each is.
ULIMITS = {"as": "AS", "core": "CORE", "cpu": "CPU", "data": "DATA", "fsize": "FSIZE", "locks": "LOCKS",
           "memlock": "MEMLOCK", "msgqueue": "MSGQUEUE", "nice": "NICE", "nofile": "NOFILE", "nproc": "NPROC",
           "rss": "RSS", "rtprio": "RTPRIO", "rttime": "RTTIME", "sigpending": "SIGPENDING", "stack": "STACK"}
UNLIMITED = -1


@dataclass(frozen=True)
class Ulimit:
    name: str  # Docker's name: nofile, nproc, core …
    soft: int  # UNLIMITED for no limit
    hard: int

    @property
    def rlimit(self) -> str:
        return f"RLIMIT_{ULIMITS[self.name]}"

    @classmethod
    def parse(cls, text: str) -> Ulimit:
        """NAME=SOFT[:HARD] (-1: unlimited)."""
        name, sep, values = text.partition("=")
        if not sep or name not in ULIMITS:
            raise InvalidArgumentError(f"invalid --ulimit {text!r}: NAME=SOFT[:HARD], NAME one of "
                                       f"{', '.join(sorted(ULIMITS))}", op="parse --ulimit")
        soft_text, _, hard_text = values.partition(":")
        try:
            soft = int(soft_text)
            hard = int(hard_text) if hard_text else soft
        except ValueError:
            raise InvalidArgumentError(f"invalid --ulimit {text!r}: numbers, or -1 for unlimited",
                                       op="parse --ulimit") from None
        if soft < UNLIMITED or hard < UNLIMITED:
            raise InvalidArgumentError(f"invalid --ulimit {text!r}: -1 is the only negative value",
                                       op="parse --ulimit")
        if hard != UNLIMITED and (soft == UNLIMITED or soft > hard):
            raise InvalidArgumentError(f"invalid --ulimit {text!r}: the soft limit is above the hard one",
                                       op="parse --ulimit")
        return cls(name, soft, hard)


# ---- devices ----------------------------------------------------------------------------------

_PERMISSIONS = re.compile(r"^[rwm]{1,3}$")


@dataclass(frozen=True)
class DeviceSpec:
    """--device HOST[:CONTAINER][:PERMISSIONS] (permissions of r, w, m: read, write, mknod)."""

    host_path: str
    container_path: str
    permissions: str = "rwm"

    @classmethod
    def parse(cls, text: str) -> DeviceSpec:
        parts = text.split(":")
        if len(parts) == 2 and _PERMISSIONS.match(parts[1]):
            parts = [parts[0], parts[0], parts[1]]
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise InvalidArgumentError(f"invalid --device {text!r}: HOST[:CONTAINER][:rwm]", op="parse --device")
        host_path = parts[0]
        container_path = parts[1] if len(parts) > 1 else host_path
        permissions = parts[2] if len(parts) == 3 else "rwm"
        if not _PERMISSIONS.match(permissions) or len(set(permissions)) != len(permissions):
            raise InvalidArgumentError(f"invalid device permissions {permissions!r}: r, w and m", op="parse --device")
        for path in (host_path, container_path):
            if not path.startswith("/") or ".." in path.split("/"):
                raise InvalidArgumentError(f"invalid --device {text!r}: paths are absolute", op="parse --device")
        return cls(host_path, container_path, permissions)


# ---- sysctls ----------------------------------------------------------------------------------

# Docker's rule (opts.ValidateSysctl): only what a namespace of the workload's own holds.
IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                         "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})
NAMESPACED_PREFIXES = ("fs.mqueue.", "net.")


def parse_sysctl(text: str, *, host_network: bool = False) -> tuple[str, str]:
    """--sysctl KEY=VALUE for a namespaced KEY (IPC's, fs.mqueue.*, net.* unless the network is the host's)."""
    key, sep, value = text.partition("=")
    key = key.strip().replace("/", ".")
    if not sep or not key:
        raise InvalidArgumentError(f"invalid --sysctl {text!r}: KEY=VALUE", op="parse --sysctl")
    if key not in IPC_SYSCTLS and not key.startswith(NAMESPACED_PREFIXES):
        raise InvalidArgumentError(
            f"--sysctl {key} is not namespaced: it would change the host's kernel (allowed: net.*, fs.mqueue.*, "
            f"{', '.join(sorted(IPC_SYSCTLS))})", op="parse --sysctl")
    if key.startswith("net.") and host_network:
        raise InvalidArgumentError(f"--sysctl {key}: with --network host the network namespace is the host's",
                                   op="parse --sysctl")
    return key, value


def parse_expose(text: str) -> tuple[str, ...]:
    """--expose PORT[/PROTO] or a range START-END[/PROTO], as image ExposedPorts keys ("80/tcp")."""
    ports, _, protocol = text.partition("/")
    protocol = protocol.lower() or "tcp"
    first, _, last = ports.partition("-")
    if protocol not in ("tcp", "udp", "sctp") or not first.isdigit() or (last and not last.isdigit()):
        raise InvalidArgumentError(f"invalid --expose {text!r}: PORT[-PORT][/tcp|udp]", op="parse --expose")
    start, end = int(first), int(last or first)
    if not 1 <= start <= end <= 65535:
        raise InvalidArgumentError(f"invalid --expose {text!r}: ports 1-65535", op="parse --expose")
    return tuple(f"{port}/{protocol}" for port in range(start, end + 1))


@dataclass(frozen=True)
class HostSettings:
    """The flags above, together in a WorkloadSpec and a RunPlan."""

    extra_hosts: tuple[tuple[str, str], ...] = ()
    dns: DnsConfig = field(default_factory=DnsConfig)
    ulimits: tuple[Ulimit, ...] = ()
    devices: tuple[DeviceSpec, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    shm_size_bytes: int | None = None
