"""isobox's records as Docker's documents: containers, images, networks and volumes, in the field names and
shapes of the Docker Engine API (moby's api/swagger.yaml, 1.44), for `isobox serve` and the CLI's inspect.

The document functions are pure (a record in, a dict out); the ones named after a resource fetch what
they need first. isobox's own facts that Docker has no field for (the kind, the VM accelerator) are under
the key ``Isobox``, so Docker's clients ignore them and isobox's users find them.
"""

from __future__ import annotations

import datetime as dt
import signal
import time
from collections.abc import Iterable, Mapping
from typing import Any

from isobox.errors import IsoboxError
from isobox.images import reference
from isobox.model.health import HealthState, to_docker
from isobox.model.humanize import human_duration
from isobox.model.image_config import ImageConfig
from isobox.model.mounts import MountKind, MountPlan
from isobox.model.network import NetworkMode, NetworkRecord
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind, RestartPolicy
from isobox.model.status import Status
from isobox.model.volume import VolumeRecord
from isobox.service.context import Context

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Docker shows for "never"


def rfc3339(timestamp: float | None) -> str:
    """Seconds since the epoch as RFC 3339 with nanoseconds, UTC (Go's time.RFC3339Nano, as Docker writes)."""
    if not timestamp:
        return ZERO_TIME
    nanoseconds = round(timestamp * 1e9)
    seconds, fraction = divmod(nanoseconds, 10**9)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def familiar(name: str) -> str:
    """docker.io/library/busybox:latest → busybox:latest, as Docker names images in its answers."""
    try:
        return reference.parse(name).familiar()
    except IsoboxError:
        return name


# ---- containers -------------------------------------------------------------------------------


def status_text(record: WorkloadRecord, now: float | None = None) -> str:
    """The human Status of `docker ps`: "Up 3 minutes", "Exited (0) 2 seconds ago", "Created"."""
    current = time.time() if now is None else now
    if record.status is Status.RUNNING:
        health = record.health.status.value if record.health is not None else ""
        shown = "health: starting" if health == "starting" else health
        return f"Up {human_duration(current - (record.started_at or current))}" + (f" ({shown})" if shown else "")
    if record.status is Status.PAUSED:
        return f"Up {human_duration(current - (record.started_at or current))} (Paused)"
    if record.status is Status.EXITED:
        return f"Exited ({record.exit_code or 0}) {human_duration(current - (record.finished_at or current))} ago"
    if record.status is Status.REMOVING:
        return "Removal In Progress"
    return "Created"


def _split_command(argv: tuple[str, ...], image: ImageConfig | None) -> tuple[list[str] | None, list[str] | None]:
    """(Entrypoint, Cmd) as Docker shows them: the image's entrypoint when the command starts with it."""
    entrypoint = image.entrypoint if image is not None else ()
    if entrypoint and argv[: len(entrypoint)] == entrypoint:
        return list(entrypoint), list(argv[len(entrypoint):]) or None
    return None, list(argv) or None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _port_key(port: int, protocol: str) -> str:
    return f"{port}/{protocol}"


def ports_document(record: WorkloadRecord, image: ImageConfig | None) -> dict[str, list[dict[str, str]] | None]:
    """NetworkSettings.Ports: each exposed port, with its host bindings or null."""
    exposed = (*(image.exposed_ports if image else ()), *record.plan.exposed_ports)
    ports: dict[str, list[dict[str, str]] | None] = {key: None for key in exposed}
    network = record.plan.network
    for port in network.ports if network is not None else ():
        key = _port_key(port.container_port, port.protocol.value)
        ports[key] = [*(ports.get(key) or []), {"HostIp": port.host_ip or "0.0.0.0", "HostPort": str(port.host_port)}]
    return ports


def _mount_document(mount: MountPlan) -> dict[str, Any]:
    document: dict[str, Any] = {"Type": mount.kind.value, "Source": mount.source, "Destination": mount.target,
                                "Mode": "ro" if mount.readonly else "", "RW": not mount.readonly,
                                "Propagation": "rprivate" if mount.kind is MountKind.BIND else ""}
    if mount.kind is MountKind.VOLUME:
        document.update(Name=mount.volume, Driver="local")
    return document


def _network_mode(record: WorkloadRecord) -> str:
    network = record.plan.network
    if network is None or network.mode is not NetworkMode.BRIDGE:
        return network.mode.value if network is not None else "none"
    return network.interfaces[0].network if network.interfaces else "default"


def networks_document(record: WorkloadRecord) -> dict[str, dict[str, Any]]:
    network = record.plan.network
    documents: dict[str, dict[str, Any]] = {}
    for interface in network.interfaces if network is not None else ():
        documents[interface.network] = {
            "IPAMConfig": None, "Links": None, "Aliases": list(interface.aliases) or None,
            "MacAddress": interface.mac, "DriverOpts": None, "NetworkID": interface.network_id,
            "EndpointID": f"{record.id[:32]}{interface.network_id[:32]}", "Gateway": interface.gateway,
            "IPAddress": interface.ip, "IPPrefixLen": interface.prefix_len, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": [record.name, record.short_id, *interface.aliases],
        }
    return documents


def _host_config(record: WorkloadRecord) -> dict[str, Any]:
    plan = record.plan
    resources, security = plan.resources, plan.security
    binds = [f"{m.source if m.kind is MountKind.BIND else m.volume}:{m.target}{':ro' if m.readonly else ''}"
             for m in plan.mounts if m.kind is MountKind.BIND or (m.kind is MountKind.VOLUME and not m.anonymous)]
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in plan.network.ports if plan.network is not None else ():
        bindings.setdefault(_port_key(port.container_port, port.protocol.value), []).append(
            {"HostIp": port.host_ip, "HostPort": str(port.host_port)})
    restart = plan.restart
    return {
        "Binds": binds or None, "ContainerIDFile": "", "LogConfig": {"Type": "k8s-file", "Config": {}},
        "NetworkMode": _network_mode(record), "PortBindings": bindings,
        "RestartPolicy": {"Name": "" if restart.policy is RestartPolicy.NO else restart.policy.value,
                          "MaximumRetryCount": restart.max_retries},
        "AutoRemove": plan.remove, "VolumeDriver": "", "VolumesFrom": None,
        "CapAdd": list(security.cap_add) or None, "CapDrop": list(security.cap_drop) or None,
        "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None,
        "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
        "Privileged": security.privileged, "PublishAllPorts": False, "ReadonlyRootfs": security.read_only,
        "SecurityOpt": _security_opts(record) or None, "UTSMode": "", "UsernsMode": security.userns,
        "ShmSize": 67108864, "Runtime": record.driver_info.get("runtime", "runc") if record.kind is Kind.CONTAINER
        else "qemu", "Isolation": "vm" if record.kind is Kind.VM else "",
        "CpuShares": resources.cpu_shares or 0, "Memory": resources.memory_bytes or 0,
        "NanoCpus": round((resources.cpus or 0) * 1e9), "CpusetCpus": resources.cpuset_cpus or "",
        "PidsLimit": resources.pids_limit, "Init": plan.init,
        "Tmpfs": {m.target: ",".join(m.tmpfs_options) for m in plan.mounts if m.kind is MountKind.TMPFS} or None,
        "Mounts": None,
    }


def _security_opts(record: WorkloadRecord) -> list[str]:
    security = record.plan.security
    options = [] if security.seccomp_profile is None else [f"seccomp={security.seccomp_profile}"]
    if not security.no_new_privileges:
        options.append("no-new-privileges=false")
    return options


def _config(record: WorkloadRecord, image: ImageConfig | None) -> dict[str, Any]:
    plan, process = record.plan, record.plan.process
    entrypoint, cmd = _split_command(process.argv, image)
    exposed: dict[str, dict[str, str]] = {key: {} for key in (*(image.exposed_ports if image else ()),
                                                              *plan.exposed_ports)}
    for port in plan.network.ports if plan.network is not None else ():
        exposed[_port_key(port.container_port, port.protocol.value)] = {}
    volumes: dict[str, dict[str, str]] = {t: {} for t in (image.volumes if image else ())}
    volumes.update({m.target: {} for m in plan.mounts if m.kind is MountKind.VOLUME and m.anonymous})
    return {
        "Hostname": plan.hostname, "Domainname": "", "User": process.user, "AttachStdin": process.interactive,
        "AttachStdout": True, "AttachStderr": True, "ExposedPorts": exposed or None, "Tty": process.tty,
        "OpenStdin": process.interactive, "StdinOnce": False, "Env": process.env_list(), "Cmd": cmd,
        "Image": plan.image, "Volumes": volumes or None, "WorkingDir": process.cwd, "Entrypoint": entrypoint,
        "OnBuild": None, "Labels": dict(plan.labels), "StopSignal": _signal_name(plan.stop_signal),
        "StopTimeout": round(plan.stop_timeout_s),
        **({"Healthcheck": to_docker(plan.health)} if plan.health is not None else {}),
    }


def container_document(record: WorkloadRecord, image: ImageConfig | None = None) -> dict[str, Any]:
    """GET /containers/{id}/json."""
    plan = record.plan
    network = plan.network
    first = network.interfaces[0] if network is not None and network.interfaces else None
    state: dict[str, Any] = {
        "Status": record.status.value, "Running": record.status in (Status.RUNNING, Status.PAUSED),
        "Paused": record.status is Status.PAUSED, "Restarting": False, "OOMKilled": record.oom_killed,
        "Dead": False, "Pid": record.pid if record.status in (Status.RUNNING, Status.PAUSED) else 0,
        "ExitCode": record.exit_code or 0, "Error": "", "StartedAt": rfc3339(record.started_at),
        "FinishedAt": rfc3339(record.finished_at),
    }
    if record.plan.health is not None:
        state["Health"] = health_document(record.health)
    return {
        "Id": record.id, "Created": rfc3339(record.created_at), "Path": plan.process.argv[0] if plan.process.argv
        else "", "Args": list(plan.process.argv[1:]), "State": state, "Image": plan.image_id,
        "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "", "LogPath": plan.log_path,
        "Name": f"/{record.name}", "RestartCount": record.restart_count, "Driver": "overlay", "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": _host_config(record), "GraphDriver": {"Name": "overlay", "Data": None},
        "Mounts": [_mount_document(m) for m in plan.mounts], "Config": _config(record, image),
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "SandboxKey": (network.netns_path or "") if network else "",
            "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports_document(record, image), "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": "", "Gateway": first.gateway if first else "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": first.ip if first else "",
            "IPPrefixLen": first.prefix_len if first else 0, "IPv6Gateway": "",
            "MacAddress": first.mac if first else "",
            "Networks": networks_document(record),
        },
        "Isobox": {"Kind": record.kind.value, "DriverInfo": dict(record.driver_info),
                   "StopTimeoutSeconds": plan.stop_timeout_s, "WorkloadDir": plan.workload_dir,
                   "UsernsBase": plan.userns_base, "RestartDelaySeconds": record.restart_delay_s},
    }


def health_document(health: HealthState | None) -> dict[str, Any]:
    """State.Health: the status (starting until the first probe), the failing streak, the last probes."""
    current = health or HealthState()
    return {"Status": current.status.value, "FailingStreak": current.failing_streak,
            "Log": [{"Start": rfc3339(p.started_at), "End": rfc3339(p.ended_at), "ExitCode": p.exit_code,
                     "Output": p.output} for p in current.log]}


def container_summary(record: WorkloadRecord) -> dict[str, Any]:
    """One entry of GET /containers/json (what `docker ps` shows)."""
    plan = record.plan
    ports = [{"IP": p.host_ip or "0.0.0.0", "PrivatePort": p.container_port, "PublicPort": p.host_port,
              "Type": p.protocol.value} for p in (plan.network.ports if plan.network is not None else ())]
    return {
        "Id": record.id, "Names": [f"/{record.name}"], "Image": plan.image, "ImageID": plan.image_id,
        "Command": " ".join(plan.process.argv), "Created": int(record.created_at), "Ports": ports,
        "Labels": dict(plan.labels), "State": record.status.value, "Status": status_text(record),
        "HostConfig": {"NetworkMode": _network_mode(record)},
        "NetworkSettings": {"Networks": networks_document(record)},
        "Mounts": [_mount_document(m) for m in plan.mounts],
        "Isobox": {"Kind": record.kind.value},
    }


def image_config_of(ctx: Context, record: WorkloadRecord) -> ImageConfig | None:
    """The workload's image configuration, or None once the image is gone from the store."""
    try:
        return ctx.images.config(ctx.images.get(record.plan.image_id))
    except IsoboxError:
        return None


def container(ctx: Context, name_or_id: str) -> dict[str, Any]:
    from isobox.service import workloads

    record = workloads.get(ctx, name_or_id)
    return container_document(record, image_config_of(ctx, record))


# ---- images -----------------------------------------------------------------------------------


def repo_tags_and_digests(names: Iterable[str], manifest_digest: str) -> tuple[list[str], list[str]]:
    tags, digests = [], []
    for name in names:
        try:
            ref = reference.parse(name)
        except IsoboxError:
            continue
        if ref.tag:
            tags.append(familiar(str(ref.with_tag(ref.tag))))
        repository = familiar(ref.name + ":x").rsplit(":", 1)[0]
        digests.append(f"{repository}@{ref.digest or manifest_digest}")
    return tags, sorted(set(digests))


def created_unix(text: str) -> int:
    """An image config's RFC 3339 ``created`` as Unix seconds (0 when absent or unreadable)."""
    from isobox.model.logs import parse_timestamp

    try:
        parsed = parse_timestamp(text.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp())


def image_document(record: Any, names: Iterable[str], config: Mapping[str, Any],
                   repo_digests: Iterable[str] = ()) -> dict[str, Any]:
    """GET /images/{name}/json, from the store's record and the image's config blob; ``repo_digests``: the
    ones the store recorded (every repository@digest the image was pulled or pushed by)."""
    tags, digests = repo_tags_and_digests(names, record.manifest_digest)
    digests = sorted({*digests, *(familiar(d) for d in repo_digests)})
    found = config.get("rootfs")
    rootfs: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "Id": record.id, "RepoTags": tags, "RepoDigests": digests, "Parent": "", "Comment": "",
        "Created": config.get("created") or record.created or ZERO_TIME, "DockerVersion": "",
        "Author": config.get("author", ""), "Config": config.get("config") or {},
        "Architecture": config.get("architecture", ""), "Os": config.get("os", ""),
        "Variant": config.get("variant", ""), "Size": record.size,
        "GraphDriver": {"Name": "overlay", "Data": None},
        "RootFS": {"Type": rootfs.get("type", "layers"), "Layers": list(rootfs.get("diff_ids") or [])},
        "Metadata": {"LastTagTime": ZERO_TIME},
    }


def image_summary(record: Any, names: Iterable[str], labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One entry of GET /images/json (what `docker images` shows)."""
    tags, digests = repo_tags_and_digests(names, record.manifest_digest)
    return {"Id": record.id, "ParentId": "", "RepoTags": tags, "RepoDigests": digests,
            "Created": created_unix(record.created), "Size": record.size, "SharedSize": -1,
            "Labels": dict(labels or {}), "Containers": -1}


def image(ctx: Context, name: str) -> dict[str, Any]:
    from isobox.service import images

    details = images.inspect(ctx, name)
    return image_document(details.record, details.names, details.config, details.repo_digests)


# ---- networks and volumes ---------------------------------------------------------------------


def network_document(network: NetworkRecord, members: Iterable[Any] = ()) -> dict[str, Any]:
    """GET /networks/{id}; ``members`` are the network's endpoints (service/network_state.Endpoint)."""
    containers = {
        e.workload_id: {"Name": e.workload_name, "EndpointID": f"{e.workload_id[:32]}{network.id[:32]}",
                        "MacAddress": e.interface.mac, "IPv4Address": f"{e.interface.ip}/{e.interface.prefix_len}",
                        "IPv6Address": ""}
        for e in members
    }
    return {
        "Name": network.name, "Id": network.id, "Created": rfc3339(network.created_at), "Scope": "local",
        "Driver": network.driver.value, "EnableIPv4": True, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {},
                 "Config": [{"Subnet": network.subnet, "Gateway": network.gateway}]},
        "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": containers, "Options": {"com.docker.network.bridge.name": network.bridge},
        "Labels": dict(network.labels), "Isobox": {"Default": network.default},
    }


def network(ctx: Context, name_or_id: str) -> dict[str, Any]:
    """The network in Docker's shape, with isobox's own view (domain, bridge and DNS up, endpoints with their
    host interfaces and ports, an overlay's slices and peers) under ``Isobox``."""
    from isobox.service import network_state, networks

    found = network_state.get(ctx, name_or_id)
    document = network_document(found, network_state.endpoints(ctx, found))
    document["Isobox"] = {**document["Isobox"], **networks.inspect(ctx, found.id)}
    return document


def volume_document(volume: VolumeRecord) -> dict[str, Any]:
    """GET /volumes/{name}; a disk volume's Mountpoint is its image file (VMs attach it as a disk)."""
    return {
        "Name": volume.name, "Driver": "local", "Mountpoint": volume.path, "CreatedAt": rfc3339(volume.created_at),
        "Labels": dict(volume.labels), "Scope": "local", "Options": dict(volume.options) or None,
        "Isobox": {"Type": volume.kind, "Anonymous": volume.anonymous, "SizeBytes": volume.size_bytes},
    }


def volume(ctx: Context, name: str) -> dict[str, Any]:
    from isobox.service import volumes

    return volume_document(volumes.inspect(ctx, name))
