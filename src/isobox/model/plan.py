"""A RunPlan: a WorkloadSpec resolved against its image and the host, the same for both drivers.

`resolve` follows Docker's rules for Entrypoint/Cmd (an explicit entrypoint drops the image's Cmd),
environment (image values, then the user's, by key) and working directory.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass, field

from isobox.errors import InvalidArgumentError
from isobox.model.health import HealthCheck, merge
from isobox.model.host_settings import HostSettings
from isobox.model.image_config import ImageConfig
from isobox.model.logs import LogOptions
from isobox.model.mounts import MountPlan
from isobox.model.network import NetworkPlan
from isobox.model.spec import Kind, Resources, Restart, Security, WorkloadSpec

USERNS_SIZE = 65536  # ids per remapped workload, as Podman's --userns=auto and Docker's userns-remap
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Process:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str = "/"
    user: str = ""  # "", "name", "uid", "uid:gid", "name:group" — resolved against the rootfs by the driver
    tty: bool = False
    interactive: bool = False

    def env_list(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.env]


class Firmware(enum.StrEnum):
    BIOS = "bios"  # SeaBIOS, QEMU's default for the pc machine
    UEFI = "uefi"  # OVMF


@dataclass(frozen=True)
class DiskBoot:
    """A VM that boots a disk image through firmware rather than an OCI image (`isobox vm create`): the
    disk is the whole machine. Paths are absolute; the disk itself is never written (the VM runs on an
    overlay)."""

    disk: str
    cdrom: str | None = None
    cloud_init: str | None = None  # cloud-init user-data, served as a NoCloud seed
    firmware: Firmware = Firmware.BIOS


@dataclass(frozen=True)
class RunPlan:
    id: str
    name: str
    kind: Kind
    image: str
    image_id: str
    process: Process
    hostname: str
    layers: tuple[str, ...]  # unpacked layer directories, lowest first
    workload_dir: str  # private directory of this workload (bundle, disks, logs)
    resources: Resources = field(default_factory=Resources)
    security: Security = field(default_factory=Security)
    restart: Restart = field(default_factory=Restart)
    stop_signal: int = int(signal.SIGTERM)
    stop_timeout_s: float = 10.0
    init: bool = False
    remove: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    mounts: tuple[MountPlan, ...] = ()  # resolved by service/ (volumes created, bind sources checked)
    userns_base: int | None = None  # with --userns=auto: host uid/gid that root inside maps to
    network: NetworkPlan | None = None  # resolved by service/networks (None: created before networking existed)
    disk_boot: DiskBoot | None = None  # a VM of a disk image, not of an OCI image
    isolated_macs: tuple[str, ...] = ()  # a clone's NICs, kept off every bridge (its guest holds the source's)
    health: HealthCheck | None = None  # the health check the engine runs (the user's merged with the image's)
    host: HostSettings = field(default_factory=HostSettings)  # --add-host, --dns*, --ulimit, --device, --sysctl
    exposed_ports: tuple[str, ...] = ()  # the image's ExposedPorts and --expose ("80/tcp"): for -P and ps
    log: LogOptions = field(default_factory=LogOptions)  # --log-opt: rotation of log_path (none by default)

    @property
    def log_path(self) -> str:
        return f"{self.workload_dir}/output.log"


def merge_env(*layers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Later layers override earlier ones by key; first-seen order is kept."""
    merged: dict[str, str] = {}
    for layer in layers:
        for key, value in layer:
            merged[key] = value
    return tuple(merged.items())


def resolve_argv(spec: WorkloadSpec, image: ImageConfig) -> tuple[str, ...]:
    if spec.entrypoint is not None:
        argv = spec.entrypoint + spec.command
    else:
        argv = image.entrypoint + (spec.command or image.cmd)
    if not argv:
        raise InvalidArgumentError(
            f"no command given and image {spec.image} has no Entrypoint or Cmd", op="resolve command"
        )
    return argv


def parse_signal(name: str | int) -> int:
    """'SIGTERM', 'TERM', 'term', '15' → 15."""
    if isinstance(name, int):
        return name
    text = name.strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise InvalidArgumentError(f"unknown signal {name!r}", op="parse signal") from None


def resolve(
    spec: WorkloadSpec,
    image: ImageConfig,
    *,
    id: str,
    name: str,
    image_id: str,
    layers: tuple[str, ...],
    workload_dir: str,
) -> RunPlan:
    hostname = spec.hostname or id[:12]
    base_env: tuple[tuple[str, str], ...] = (("PATH", DEFAULT_PATH), ("HOSTNAME", hostname))
    if spec.tty:
        base_env += (("TERM", "xterm"),)
    env = merge_env(base_env, image.env, spec.env)
    process = Process(
        argv=resolve_argv(spec, image),
        env=env,
        cwd=spec.workdir or image.workdir or "/",
        user=spec.user if spec.user is not None else image.user,
        tty=spec.tty,
        interactive=spec.interactive,
    )
    if not process.cwd.startswith("/"):
        raise InvalidArgumentError(f"working directory {process.cwd!r} is not absolute", op="resolve workdir")
    return RunPlan(
        id=id,
        name=name,
        kind=spec.kind,
        image=spec.image,
        image_id=image_id,
        process=process,
        hostname=hostname,
        layers=layers,
        workload_dir=workload_dir,
        resources=spec.resources,
        security=spec.security,
        restart=spec.restart,
        stop_signal=parse_signal(spec.stop_signal or image.stop_signal or int(signal.SIGTERM)),
        stop_timeout_s=spec.stop_timeout_s,
        init=spec.init,
        remove=spec.remove,
        labels=merge_env(image.labels, spec.labels),
        health=merge(spec.health, image.health),
        host=spec.host,
        exposed_ports=tuple(dict.fromkeys((*image.exposed_ports, *spec.expose))),
        log=spec.log,
    )
