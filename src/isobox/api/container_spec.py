"""POST /containers/create: Docker's Config, HostConfig and NetworkingConfig as an isobox WorkloadSpec.

Every field isobox supports is translated; a field that would change what the container is or can do and
that isobox cannot honour is refused with a 400 naming it (silently dropping it would run something other
than what was asked); fields that change nothing here (attach flags, the console size, log options of
Docker's json-file driver) are ignored. A wrong JSON type is a 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from isobox.api.messages import require_type
from isobox.errors import InvalidArgumentError
from isobox.model.health import from_docker
from isobox.model.host_settings import DeviceSpec, DnsConfig, HostSettings, Ulimit, parse_extra_host, parse_sysctl
from isobox.model.mounts import MountKind, MountSpec, parse_tmpfs, parse_volume, validate_volume_name
from isobox.model.network import PortSpec, Protocol
from isobox.model.spec import Kind, Resources, Restart, RestartPolicy, Security, WorkloadSpec, parse_env

OP = "create container"

# HostConfig fields that matter and that isobox has no equivalent for yet: refused when set.
UNSUPPORTED_HOST = (
    "GroupAdd", "Links", "VolumesFrom",
    "DeviceRequests", "DeviceCgroupRules", "StorageOpt", "CpusetMems", "BlkioWeight",
    "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps", "CpuRealtimePeriod", "CpuRealtimeRuntime", "MaskedPaths", "ReadonlyPaths",
    "CgroupParent", "OomKillDisable", "MemorySwappiness", "KernelMemoryTCP", "CpuCount", "CpuPercent",
    "IOMaximumIOps", "IOMaximumBandwidth",
)
UNSET_MINUS_ONE = ("MemorySwappiness",)  # the docker CLI sends -1 for "not set"
# Namespace modes: only the private one (Docker's default) is available.
PRIVATE_MODES = {"IpcMode": ("", "private", "shareable"), "PidMode": ("", "private"), "UTSMode": ("", "private"),
                 "CgroupnsMode": ("", "private", "host")}
LOG_DRIVERS = ("", "json-file", "local", "k8s-file")  # all of them: isobox's log, which `logs` reads
ISOLATIONS = {"": None, "default": None, "vm": Kind.VM, "process": Kind.CONTAINER, "container": Kind.CONTAINER}


def _field(document: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = document.get(key)
    return None if value is None else require_type(value, kind, f"{where}.{key}" if where else key)


def _strings(document: Mapping[str, Any], key: str, where: str) -> list[str] | None:
    """A list of strings, or a single string (Docker's strslice accepts both)."""
    value = _field(document, key, (list, str), where)
    if value is None or isinstance(value, str):
        return None if value is None else [value]
    for item in value:
        require_type(item, str, f"{where}.{key}[]" if where else f"{key}[]")
    return list(value)


def _labels(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    require_type(value, dict, what)
    for key, item in value.items():
        require_type(item, str, f"{what}[{key!r}]")
    return tuple(value.items())


def _refuse(what: str, why: str = "isobox does not support it yet") -> InvalidArgumentError:
    return InvalidArgumentError(f"{what} is not supported: {why}", op=OP)


def _check_unsupported(host: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    for key in UNSUPPORTED_HOST:
        if host.get(key) not in (None, "", 0, [], {}, False) and not (key in UNSET_MINUS_ONE and host[key] == -1):
            raise _refuse(f"HostConfig.{key}")
    for key, allowed in PRIVATE_MODES.items():
        if (host.get(key) or "") not in allowed:
            raise _refuse(f"HostConfig.{key}={host.get(key)!r}", "only private namespaces")
    if (host.get("VolumeDriver") or "local") != "local":
        raise _refuse(f"HostConfig.VolumeDriver={host.get('VolumeDriver')!r}", "only the local driver")
    if (host.get("Runtime") or "runc") not in ("runc", "crun", "io.containerd.runc.v2"):
        raise _refuse(f"HostConfig.Runtime={host.get('Runtime')!r}", "isobox picks runc or crun itself")
    log_type = ((host.get("LogConfig") or {}).get("Type") or "")
    if log_type not in LOG_DRIVERS:
        raise _refuse(f"HostConfig.LogConfig.Type={log_type!r}", "isobox keeps one log that `logs` reads")
    if config.get("MacAddress"):
        raise _refuse("Config.MacAddress", "isobox derives each interface's MAC address from its IP address")


def _restart(host: Mapping[str, Any]) -> Restart:
    policy = _field(host, "RestartPolicy", dict, "HostConfig") or {}
    name = _field(policy, "Name", str, "HostConfig.RestartPolicy") or "no"
    retries = _field(policy, "MaximumRetryCount", int, "HostConfig.RestartPolicy") or 0
    try:
        chosen = RestartPolicy(name)
    except ValueError:
        raise InvalidArgumentError(f"invalid restart policy {name!r}", op=OP) from None
    if retries and chosen is not RestartPolicy.ON_FAILURE:
        raise InvalidArgumentError(f"maximum retry count applies to on-failure only, not {name!r}", op=OP)
    if retries < 0:
        raise InvalidArgumentError("HostConfig.RestartPolicy.MaximumRetryCount may not be negative", op=OP)
    return Restart(chosen, retries)


def _resources(host: Mapping[str, Any]) -> Resources:
    memory = _field(host, "Memory", int, "HostConfig") or 0
    nano = _field(host, "NanoCpus", int, "HostConfig") or 0
    period = _field(host, "CpuPeriod", int, "HostConfig") or 0
    quota = _field(host, "CpuQuota", int, "HostConfig") or 0
    shares = _field(host, "CpuShares", int, "HostConfig") or 0
    pids = _field(host, "PidsLimit", int, "HostConfig")
    for name, value in (("Memory", memory), ("NanoCpus", nano), ("CpuShares", shares), ("CpuQuota", quota)):
        if value < 0:
            raise InvalidArgumentError(f"HostConfig.{name} may not be negative", op=OP)
    if nano and quota:
        raise InvalidArgumentError("HostConfig.NanoCpus and HostConfig.CpuQuota exclude each other", op=OP)
    cpus = nano / 1e9 if nano else (quota / (period or 100_000) if quota else None)
    return Resources(
        memory_bytes=memory or None, cpus=cpus, cpu_shares=shares or None,
        pids_limit=pids if pids is not None and pids > 0 else None,
        cpuset_cpus=_field(host, "CpusetCpus", str, "HostConfig") or None,
    )


def _security(host: Mapping[str, Any]) -> Security:
    seccomp: str | None = None
    no_new_privileges = True
    for option in _strings(host, "SecurityOpt", "HostConfig") or []:
        key, _, value = option.partition("=" if "=" in option else ":")  # "seccomp:…" is the old spelling
        if key == "seccomp" and value:
            seccomp = value
        elif key == "no-new-privileges":
            no_new_privileges = value.lower() not in ("false", "0", "no")
        elif key in ("label", "apparmor"):
            continue  # SELinux and AppArmor are not in use on isobox's hosts: nothing to relabel or confine by name
        else:
            raise InvalidArgumentError(f"unknown HostConfig.SecurityOpt {option!r}", op=OP)
    userns = _field(host, "UsernsMode", str, "HostConfig") or ""
    if userns not in ("", "host", "auto"):
        raise _refuse(f"HostConfig.UsernsMode={userns!r}", "use auto or host")
    return Security(
        privileged=bool(_field(host, "Privileged", bool, "HostConfig")),
        cap_add=tuple(_strings(host, "CapAdd", "HostConfig") or ()),
        cap_drop=tuple(_strings(host, "CapDrop", "HostConfig") or ()),
        no_new_privileges=no_new_privileges, seccomp_profile=seccomp,
        read_only=bool(_field(host, "ReadonlyRootfs", bool, "HostConfig")),
        userns="" if userns == "host" else userns,
    )


def _bind(text: str) -> MountSpec:
    """One HostConfig.Binds entry, SOURCE:TARGET[:OPTIONS] with Docker's comma-separated options."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise InvalidArgumentError(f"invalid bind {text!r}: use SOURCE:TARGET[:OPTIONS]", op=OP)
    readonly = False
    for option in parts[2].split(",") if len(parts) == 3 else []:
        if option in ("ro", "rw"):
            readonly = option == "ro"
        elif option in ("z", "Z", "nocopy", "rprivate", "private", ""):
            continue  # SELinux relabelling and the default propagation: nothing to do here
        else:
            raise InvalidArgumentError(f"bind option {option!r} in {text!r} is not supported", op=OP)
    return parse_volume(f"{parts[0]}:{parts[1]}:{'ro' if readonly else 'rw'}")


def _mount(item: Any, index: int) -> MountSpec:
    where = f"HostConfig.Mounts[{index}]"
    require_type(item, dict, where)
    kind_text = _field(item, "Type", str, where) or "volume"
    try:
        kind = MountKind(kind_text)
    except ValueError:
        raise _refuse(f"{where}.Type={kind_text!r}", "use volume, bind or tmpfs") from None
    target = _field(item, "Target", str, where)
    if not target:
        raise InvalidArgumentError(f"{where}.Target is required", op=OP)
    source = _field(item, "Source", str, where) or ""
    readonly = bool(_field(item, "ReadOnly", bool, where))
    if kind is MountKind.TMPFS:
        options = _field(item, "TmpfsOptions", dict, where) or {}
        size = _field(options, "SizeBytes", int, where + ".TmpfsOptions")
        mode = _field(options, "Mode", int, where + ".TmpfsOptions")
        extra = [f"size={size}"] if size else []
        extra += [f"mode={mode:o}"] if mode else []
        spec = parse_tmpfs(f"{target}:{','.join(extra)}" if extra else target)
        return MountSpec(MountKind.TMPFS, spec.target, "", readonly, spec.tmpfs_options)
    if kind is MountKind.BIND:
        propagation = (_field(item, "BindOptions", dict, where) or {}).get("Propagation") or "rprivate"
        if propagation not in ("rprivate", "private"):
            raise _refuse(f"{where}.BindOptions.Propagation={propagation!r}")
        if not source.startswith("/"):
            raise InvalidArgumentError(f"{where}.Source {source!r} must be an absolute host path", op=OP)
        return parse_volume(f"{source}:{target}:{'ro' if readonly else 'rw'}")
    driver = ((_field(item, "VolumeOptions", dict, where) or {}).get("DriverConfig") or {}).get("Name") or "local"
    if driver != "local":
        raise _refuse(f"{where}.VolumeOptions.DriverConfig.Name={driver!r}", "only the local driver")
    if source:
        validate_volume_name(source)
    return parse_volume(f"{source}:{target}:{'ro' if readonly else 'rw'}") if source else \
        MountSpec(MountKind.VOLUME, parse_volume(target).target, "", readonly)


def _mounts(config: Mapping[str, Any], host: Mapping[str, Any]) -> tuple[MountSpec, ...]:
    mounts = [_bind(b) for b in _strings(host, "Binds", "HostConfig") or []]
    mounts += [_mount(m, i) for i, m in enumerate(_field(host, "Mounts", list, "HostConfig") or [])]
    tmpfs = _field(host, "Tmpfs", dict, "HostConfig") or {}
    for target, options in tmpfs.items():
        require_type(options, str, f"HostConfig.Tmpfs[{target!r}]")
        mounts.append(parse_tmpfs(f"{target}:{options}" if options else target))
    taken = {m.target for m in mounts}
    for target in (_field(config, "Volumes", dict, "") or {}):
        anonymous = parse_volume(target)
        if anonymous.target not in taken:
            mounts.append(anonymous)
    return tuple(mounts)


def _ports(host: Mapping[str, Any]) -> tuple[PortSpec, ...]:
    ports: list[PortSpec] = []
    for key, bindings in (_field(host, "PortBindings", dict, "HostConfig") or {}).items():
        port_text, _, proto = key.partition("/")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidArgumentError(f"invalid port {key!r} in HostConfig.PortBindings", op=OP)
        try:
            protocol = Protocol(proto or "tcp")
        except ValueError:
            raise _refuse(f"protocol {proto!r} in HostConfig.PortBindings", "use tcp or udp") from None
        for binding in bindings or [{}]:
            require_type(binding, dict, f"HostConfig.PortBindings[{key!r}][]")
            host_port = _field(binding, "HostPort", str, "PortBinding") or "0"
            first = host_port.split("-")[0]
            if not first.isdigit() or int(first) > 65535:
                raise InvalidArgumentError(f"invalid host port {host_port!r} for {key}", op=OP)
            host_ip = _field(binding, "HostIp", str, "PortBinding") or ""
            ports.append(PortSpec(int(port_text), int(first), "" if host_ip in ("0.0.0.0", "::") else host_ip,
                                  protocol))
    return tuple(ports)


def _networks(host: Mapping[str, Any], networking: Mapping[str, Any]
              ) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """(networks, address on the first, aliases) from NetworkMode and NetworkingConfig.EndpointsConfig."""
    mode = _field(host, "NetworkMode", str, "HostConfig") or "default"
    if mode.startswith("container:"):
        raise _refuse(f"HostConfig.NetworkMode={mode!r}", "sharing another container's network namespace")
    endpoints = _field(networking, "EndpointsConfig", dict, "NetworkingConfig") or {}
    names = [] if mode in ("default", "bridge") else [mode]
    names += [n for n in endpoints if n not in names and n not in ("default", "bridge")]
    address, aliases = None, []
    for index, name in enumerate(names or ["default"]):
        settings = endpoints.get(name) or {}
        require_type(settings, dict, f"NetworkingConfig.EndpointsConfig[{name!r}]")
        ipam = settings.get("IPAMConfig") or {}
        wanted = ipam.get("IPv4Address") if isinstance(ipam, dict) else None
        if wanted and index == 0:
            address = require_type(wanted, str, "IPAMConfig.IPv4Address")
        elif wanted:
            raise _refuse(f"an IPv4Address on network {name!r}", "only on the first network")
        aliases += [a for a in _strings(settings, "Aliases", f"EndpointsConfig[{name!r}]") or [] if a not in aliases]
    return tuple(names), address, tuple(aliases)


def _host_settings(host: Mapping[str, Any]) -> HostSettings:
    """ExtraHosts, Dns*, Ulimits, Devices, Sysctls and ShmSize: the settings `run` takes as --add-host, --dns,
    --ulimit, --device, --sysctl and --shm-size, checked by the same parsers."""
    where = "HostConfig"
    ulimits = []
    for index, item in enumerate(_field(host, "Ulimits", list, where) or []):
        require_type(item, dict, f"{where}.Ulimits[{index}]")
        name = _field(item, "Name", str, f"{where}.Ulimits[{index}]") or ""
        soft = _field(item, "Soft", int, f"{where}.Ulimits[{index}]")
        hard = _field(item, "Hard", int, f"{where}.Ulimits[{index}]")
        ulimits.append(Ulimit.parse(f"{name}={soft if soft is not None else -1}:{hard if hard is not None else -1}"))
    devices = []
    for index, item in enumerate(_field(host, "Devices", list, where) or []):
        require_type(item, dict, f"{where}.Devices[{index}]")
        source = _field(item, "PathOnHost", str, f"{where}.Devices[{index}]") or ""
        target = _field(item, "PathInContainer", str, f"{where}.Devices[{index}]") or source
        access = _field(item, "CgroupPermissions", str, f"{where}.Devices[{index}]") or "rwm"
        devices.append(DeviceSpec.parse(f"{source}:{target}:{access}"))
    sysctls = _field(host, "Sysctls", dict, where) or {}
    host_network = (_field(host, "NetworkMode", str, where) or "") == "host"
    shm = _field(host, "ShmSize", int, where)
    if shm is not None and shm < 0:
        raise InvalidArgumentError("HostConfig.ShmSize may not be negative", op=OP)
    return HostSettings(
        extra_hosts=tuple(parse_extra_host(h) for h in _strings(host, "ExtraHosts", where) or ()),
        dns=DnsConfig.parse(_strings(host, "Dns", where) or (), _strings(host, "DnsSearch", where) or (),
                            _strings(host, "DnsOptions", where) or ()),
        ulimits=tuple({u.name: u for u in ulimits}.values()), devices=tuple(devices),
        sysctls=tuple(dict(parse_sysctl(f"{key}={require_type(value, str, f'{where}.Sysctls[{key!r}]')}",
                                        host_network=host_network) for key, value in sysctls.items()).items()),
        shm_size_bytes=shm or None,
    )


def _kind(host: Mapping[str, Any]) -> tuple[Kind, bool]:
    isolation = (_field(host, "Isolation", str, "HostConfig") or "").lower()
    if isolation not in ISOLATIONS:
        raise _refuse(f"HostConfig.Isolation={isolation!r}", "use vm, process or default")
    chosen = ISOLATIONS[isolation]
    return (chosen or Kind.CONTAINER), chosen is None


def build_spec(body: Mapping[str, Any], name: str | None) -> WorkloadSpec:
    """The WorkloadSpec for a create request's body; a 400 (InvalidArgumentError) names what is wrong."""
    config = body
    host = _field(body, "HostConfig", dict, "") or {}
    networking = _field(body, "NetworkingConfig", dict, "") or {}
    _check_unsupported(host, config)
    image = _field(config, "Image", str, "")
    if not image:
        raise InvalidArgumentError("Image is required", op=OP)
    entrypoint = _strings(config, "Entrypoint", "")
    kind, by_policy = _kind(host)
    networks, address, aliases = _networks(host, networking)
    if config.get("NetworkDisabled"):
        networks = ("none",)
    stop_timeout = _field(config, "StopTimeout", int, "")
    restart = _restart(host)
    remove = bool(_field(host, "AutoRemove", bool, "HostConfig"))
    if remove and restart.policy is not RestartPolicy.NO:
        raise InvalidArgumentError("AutoRemove and a restart policy exclude each other", op=OP)
    init = _field(host, "Init", bool, "HostConfig")
    return WorkloadSpec(
        image=image, command=tuple(_strings(config, "Cmd", "") or ()), kind=kind, kind_by_policy=by_policy,
        name=name, entrypoint=None if entrypoint is None else tuple(e for e in entrypoint if e),
        env=parse_env(_strings(config, "Env", "") or []), workdir=_field(config, "WorkingDir", str, "") or None,
        user=_field(config, "User", str, "") or None, hostname=_field(config, "Hostname", str, "") or None,
        tty=bool(_field(config, "Tty", bool, "")), interactive=bool(_field(config, "OpenStdin", bool, "")),
        init=bool(init), remove=remove,
        labels=_labels(config.get("Labels"), "Labels"), resources=_resources(host), security=_security(host),
        restart=restart, stop_timeout_s=float(stop_timeout) if stop_timeout is not None else 10.0,
        stop_signal=_field(config, "StopSignal", str, "") or None, mounts=_mounts(config, host),
        networks=networks, publish=_ports(host), publish_all=bool(_field(host, "PublishAllPorts", bool, "HostConfig")),
        ip=address, network_aliases=aliases,
        health=from_docker(_field(config, "Healthcheck", dict, ""), "Config.Healthcheck"),
        host=_host_settings(host), expose=tuple(_field(config, "ExposedPorts", dict, "") or {}),
    )
