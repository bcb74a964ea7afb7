"""RunPlan → OCI runtime-spec config.json (runtime-spec v1.0.2), as a pure function, golden-tested.

Defaults follow Docker's (moby/oci/defaults.go): its capability set and seccomp profile (both passed in),
no_new_privileges, masked and read-only /proc and /sys paths, a minimal tmpfs /dev, private mount,
pid, ipc, uts and network namespaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isobox.model.plan import USERNS_SIZE, RunPlan
from isobox.model.users import ResolvedUser

OCI_VERSION = "1.0.2"
CPU_PERIOD_US = 100_000
INIT_PATH = "/dev/init"

MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# The device cgroup: deny everything, then allow mknod of any type (it is useless without read/write)
# and the standard character devices a process expects (null, zero, full, random, urandom, tty, ptmx, pts).
_ALLOWED_DEVICES = (
    ("c", None, None, "m"),
    ("b", None, None, "m"),
    ("c", 1, 3, "rwm"),
    ("c", 1, 5, "rwm"),
    ("c", 1, 7, "rwm"),
    ("c", 1, 8, "rwm"),
    ("c", 1, 9, "rwm"),
    ("c", 5, 0, "rwm"),
    ("c", 5, 1, "rwm"),
    ("c", 5, 2, "rwm"),
    ("c", 136, None, "rwm"),
)


@dataclass(frozen=True)
class HostFacts:
    """What the spec depends on that comes from the host, not the plan (so build() stays pure)."""

    cgroup_v2: bool = False
    swap_accounting: bool = False
    nofile_hard: int = 1_048_576
    nproc_hard: int = 4_194_304
    init_binary: str | None = None  # host path of a static init for --init
    apparmor: bool = False  # the kernel runs AppArmor: --security-opt apparmor= is applied
    selinux: bool = False  # the kernel runs SELinux: --security-opt label= is applied


@dataclass(frozen=True)
class DeviceNode:
    """A host device given with --device, as the host has it (stat of its node)."""

    path: str  # in the container
    kind: str  # "c" or "b"
    major: int
    minor: int
    file_mode: int
    permissions: str  # of r, w, m
    uid: int = 0
    gid: int = 0


RLIM_INFINITY = 2**64 - 1  # an unlimited rlimit in the OCI spec (uint64, as RLIM_INFINITY)
SELINUX_DEFAULT = ("system_u", "system_r", "container_t", "s0")


@dataclass(frozen=True)
class FileMount:
    """A bind (or tmpfs) mount on top of the image: /etc files, volumes, host paths."""

    destination: str  # in-root path, already resolved by storage.rootfs.ensure_mountpoint
    source: str
    readonly: bool = False
    fstype: str = "bind"
    options: tuple[str, ...] = ()


def build(
    plan: RunPlan,
    *,
    rootfs: str,
    user: ResolvedUser,
    capabilities: tuple[str, ...],
    seccomp: dict[str, Any] | None,
    cgroups_path: str,
    files: tuple[FileMount, ...] = (),
    netns_path: str | None = None,
    host: HostFacts = HostFacts(),
    devices: tuple[DeviceNode, ...] = (),
) -> dict[str, Any]:
    privileged = plan.security.privileged
    process: dict[str, Any] = {
        "terminal": plan.process.tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
        "args": ([INIT_PATH, "--"] if plan.init and host.init_binary else []) + list(plan.process.argv),
        "env": _env_with_home(plan.process.env_list(), user.home),
        "cwd": plan.process.cwd,
        "capabilities": {key: list(capabilities) for key in ("bounding", "effective", "permitted")},
        "rlimits": _rlimits(plan, host),
        "noNewPrivileges": plan.security.no_new_privileges and not privileged,
        "oomScoreAdj": 0,
    }
    process.update(_lsm_labels(plan, host))
    linux: dict[str, Any] = {
        "namespaces": _namespaces(netns_path, host, userns=plan.userns_base is not None),
        "cgroupsPath": cgroups_path,
        "resources": _resources(plan, host, privileged, devices),
        "rootfsPropagation": "private",
    }
    if devices:
        linux["devices"] = [{"path": d.path, "type": d.kind, "major": d.major, "minor": d.minor,
                             "fileMode": d.file_mode, "uid": d.uid, "gid": d.gid} for d in devices]
    if plan.host.sysctls:
        linux["sysctl"] = dict(plan.host.sysctls)
    if plan.userns_base is not None:
        mapping = [{"containerID": 0, "hostID": plan.userns_base, "size": USERNS_SIZE}]
        linux["uidMappings"] = mapping
        linux["gidMappings"] = mapping
    if not privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    if seccomp is not None and not privileged:
        linux["seccomp"] = seccomp
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": plan.security.read_only},
        "hostname": plan.hostname,
        "mounts": _mounts(plan, files, host, privileged),
        "linux": linux,
        "annotations": {"org.isobox.id": plan.id, "org.isobox.name": plan.name},
    }


def _rlimits(plan: RunPlan, host: HostFacts) -> list[dict[str, Any]]:
    """NOFILE and NPROC at the host's ceiling, then the --ulimit values (-1: unlimited), by type."""
    limits = {
        "RLIMIT_NOFILE": (host.nofile_hard, host.nofile_hard),
        "RLIMIT_NPROC": (host.nproc_hard, host.nproc_hard),
    }
    for ulimit in plan.host.ulimits:
        soft = RLIM_INFINITY if ulimit.soft < 0 else ulimit.soft
        hard = RLIM_INFINITY if ulimit.hard < 0 else ulimit.hard
        limits[ulimit.rlimit] = (soft, hard)
    return [{"type": kind, "hard": hard, "soft": soft} for kind, (soft, hard) in limits.items()]


def _lsm_labels(plan: RunPlan, host: HostFacts) -> dict[str, str]:
    """process.apparmorProfile and process.selinuxLabel, where the host runs that module (elsewhere the CLI
    warned that the option has no effect)."""
    security = plan.security
    labels: dict[str, str] = {}
    if host.apparmor and security.apparmor_profile and security.apparmor_profile != "unconfined":
        labels["apparmorProfile"] = security.apparmor_profile
    if host.selinux and security.selinux_label and "disable" not in security.selinux_label:
        parts = dict(zip(("user", "role", "type", "level"), SELINUX_DEFAULT, strict=True))
        for item in security.selinux_label:
            key, _, value = item.partition(":")
            if key in parts:
                parts[key] = value
        labels["selinuxLabel"] = ":".join(parts.values())
    return labels


def _env_with_home(env: list[str], home: str) -> list[str]:
    if any(item.startswith("HOME=") for item in env):
        return env
    return [*env, f"HOME={home}"]


def _namespaces(netns_path: str | None, host: HostFacts, *, userns: bool = False) -> list[dict[str, str]]:
    spaces = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    if userns:
        # With a network namespace of its own, the user namespace that owns it was pinned beside it
        # (network/netns.py); runc joins it, and still gets the mappings, which it checks against it.
        from isobox.network.netns import userns_path  # only then: the network code is not on every run's path

        spaces.append({"type": "user", "path": str(userns_path(Path(netns_path)))} if netns_path else {"type": "user"})
    spaces.append({"type": "network", "path": netns_path} if netns_path else {"type": "network"})
    if host.cgroup_v2:
        spaces.append({"type": "cgroup"})
    return spaces


def resources_of(plan: RunPlan, host: HostFacts, devices: tuple[DeviceNode, ...] = ()) -> dict[str, Any]:
    """linux.resources of the plan (`isobox update` rewrites it in a created container's config.json)."""
    return _resources(plan, host, plan.security.privileged, devices)


def _resources(plan: RunPlan, host: HostFacts, privileged: bool, devices: tuple[DeviceNode, ...] = ()
               ) -> dict[str, Any]:
    limits = plan.resources
    resources: dict[str, Any] = {}
    if privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        resources["devices"] = [{"allow": False, "access": "rwm"}] + [
            {
                "allow": True,
                "type": kind,
                **({"major": major} if major is not None else {}),
                **({"minor": minor} if minor is not None else {}),
                "access": access,
            }
            for kind, major, minor, access in _ALLOWED_DEVICES
        ] + [{"allow": True, "type": d.kind, "major": d.major, "minor": d.minor, "access": d.permissions}
             for d in devices]
    memory: dict[str, int] = {}
    if limits.memory_bytes:
        memory["limit"] = limits.memory_bytes
        if host.cgroup_v2 or host.swap_accounting:
            # memory+swap: what --memory-swap says (-1: unlimited), else the limit itself (no swap beyond it)
            memory["swap"] = limits.memory_swap_bytes or limits.memory_bytes
    if limits.memory_reservation_bytes:
        memory["reservation"] = limits.memory_reservation_bytes
    if memory:
        resources["memory"] = memory
    cpu: dict[str, Any] = {}
    if limits.cpus:
        cpu["quota"] = int(limits.cpus * CPU_PERIOD_US)
        cpu["period"] = CPU_PERIOD_US
    if limits.cpu_shares:
        cpu["shares"] = limits.cpu_shares
    if limits.cpuset_cpus:
        cpu["cpus"] = limits.cpuset_cpus
    if cpu:
        resources["cpu"] = cpu
    if limits.pids_limit:
        resources["pids"] = {"limit": limits.pids_limit}
    return resources


def _shm_kib(plan: RunPlan) -> int:
    """/dev/shm's size: --shm-size, else Docker's 64 MiB."""
    size = plan.host.shm_size_bytes or 64 * 1024 * 1024
    return max(1, size // 1024)


def _mounts(plan: RunPlan, files: tuple[FileMount, ...], host: HostFacts, privileged: bool) -> list[dict[str, Any]]:
    sys_options = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={_shm_kib(plan)}k"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]
    if plan.userns_base is not None:
        # A user namespace may not mount a fresh sysfs while the host's has mounts on top of it (the
        # kernel's "mount too revealing" rule), nor a v1 cgroupfs: bind the host's /sys read-only, as
        # rootless runtimes do, and hide its cgroup tree under an empty read-only tmpfs.
        for mount in mounts:
            if mount["destination"] == "/sys":
                mount.update(type="bind", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
            elif mount["destination"] == "/sys/fs/cgroup":
                mount.update(type="tmpfs", source="tmpfs", options=["nosuid", "noexec", "nodev", "ro", "size=4k"])
    if plan.init and host.init_binary:
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": host.init_binary, "options": ["bind", "ro"]})
    for item in files:
        if item.fstype == "tmpfs":
            options = ["nosuid", "nodev", *item.options] + (["ro"] if item.readonly else [])
        else:
            options = ["rbind", "rprivate", *item.options] + (["ro"] if item.readonly else [])
        mounts.append({"destination": item.destination, "type": item.fstype, "source": item.source, "options": options})
    return mounts
