"""Preparing an OCI bundle: the overlay rootfs, safe mount points, /etc files, and config.json."""

from __future__ import annotations

import json
import logging
import os
import resource
import stat
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from isobox.drivers.container import capabilities, oci_spec, seccomp
from isobox.errors import InvalidArgumentError, WorkloadError
from isobox.linux import cgroups, idmap
from isobox.linux.mount import is_mountpoint, mount, umount
from isobox.linux.proc import bounding_capabilities, security_modules, x32_abi_enabled
from isobox.linux.tree import discard_tree
from isobox.model import network as network_model
from isobox.model.host_settings import hosts_with_extras, resolv_with
from isobox.model.mounts import MountKind
from isobox.model.plan import USERNS_SIZE, RunPlan
from isobox.model.spec import Resources
from isobox.model.users import resolve_user
from isobox.storage import rootfs as rootfs_access
from isobox.storage.snapshot import overlay_mount

log = logging.getLogger(__name__)

SECCOMP_PROFILE = Path("/usr/share/containers/seccomp.json")
TINI = Path("/usr/bin/tini-static")
# Destinations the runtime mounts over; each must be a real directory, never a symlink from the image.
_DIR_DESTINATIONS = ("/proc", "/sys", "/dev", "/sys/fs/cgroup")
_FORBIDDEN_CWD_PREFIXES = ("/proc", "/sys", "/dev")


def host_facts() -> oci_spec.HostFacts:
    """Limits are clipped to what this host allows, so a container never fails on an rlimit."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    infinity = resource.RLIM_INFINITY
    return oci_spec.HostFacts(
        cgroup_v2=cgroups.version() is cgroups.CgroupVersion.V2,
        swap_accounting=Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
        nofile_hard=1_048_576 if nofile == infinity else min(nofile, 1_048_576),
        nproc_hard=4_194_304 if nproc == infinity else min(nproc, 4_194_304),
        init_binary=str(TINI) if TINI.is_file() else None,
        apparmor="apparmor" in security_modules(),
        selinux="selinux" in security_modules(),
    )


def kernel_version() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def rootfs_dir(plan: RunPlan) -> Path:
    return Path(plan.workload_dir) / "rootfs"


def mount_rootfs(plan: RunPlan) -> None:
    target = rootfs_dir(plan)
    if is_mountpoint(str(target)):
        return
    missing = [layer for layer in plan.layers if not Path(layer).is_dir()]
    if missing:  # overlayfs would only say ENOENT
        raise WorkloadError(
            f"layer {missing[0]} of image {plan.image} is missing: `isobox system check --repair` unpacks it again",
            op="mount rootfs", path=str(target),
        )
    try:
        layers = _idmapped_layers(plan) if plan.userns_base is not None else plan.layers
        spec = overlay_mount(layers, Path(plan.workload_dir))
        mount(spec.source, spec.target, spec.fstype, 0, spec.options)
    except OSError as exc:
        _unmount_layers(plan)
        raise WorkloadError(
            f"cannot mount the container rootfs: {exc.strerror}", op="mount rootfs", path=str(target)
        ) from exc


def _idmapped_layers(plan: RunPlan) -> tuple[str, ...]:
    """Each shared layer, idmapped to the workload's uid range, under WORKLOAD/lower/N (no file is copied)."""
    assert plan.userns_base is not None
    base = Path(plan.workload_dir) / "lower"
    targets = []
    with idmap.userns(plan.userns_base, USERNS_SIZE) as userns_fd:
        for index, layer in enumerate(plan.layers):
            target = base / str(index)
            target.mkdir(parents=True, exist_ok=True)
            if not is_mountpoint(str(target)):
                idmap.idmapped_bind(layer, str(target), userns_fd)
            targets.append(str(target))
    return tuple(targets)


def _unmount_layers(plan: RunPlan) -> None:
    """The idmapped layers and volumes of a --userns container."""
    for base in (Path(plan.workload_dir) / "lower", Path(plan.workload_dir) / "volumes"):
        if not base.is_dir():
            continue
        for entry in base.iterdir():
            if is_mountpoint(str(entry)):
                umount(str(entry), detach=True)


def unmount_rootfs(plan: RunPlan) -> None:
    target = rootfs_dir(plan)
    if is_mountpoint(str(target)):
        try:
            umount(str(target))
        except OSError:
            umount(str(target), detach=True)  # busy (an exec still running): detach, the kernel frees it later
    _unmount_layers(plan)


def safe_cwd(root: Path, cwd: str) -> str:
    """The working directory, resolved in-root and created if missing, as Docker does for WORKDIR.

    A cwd under /proc, /sys or /dev is refused: runc before 1.1.12 (CVE-2024-21626) could be steered by
    a WORKDIR of /proc/self/fd/N onto a host file descriptor.
    """
    resolved = "/" + str(rootfs_access.resolve_in_root(root, cwd).relative_to(root))
    for prefix in _FORBIDDEN_CWD_PREFIXES:
        if resolved == prefix or resolved.startswith(prefix + "/"):
            raise InvalidArgumentError(
                f"working directory {cwd!r} is inside {prefix}, which is not allowed", op="create"
            )
    rootfs_access.ensure_dir_in_root(root, resolved)
    return resolved


def extra_mounts(plan: RunPlan, root: Path) -> tuple[oci_spec.FileMount, ...]:
    """Volumes, bind mounts and tmpfs of the plan, parents before children, destinations made safe."""
    mounts = []
    for item in sorted(plan.mounts, key=lambda m: m.target.count("/")):
        if item.kind is MountKind.TMPFS:
            dest = rootfs_access.ensure_mountpoint(root, item.target, is_dir=True)
            mounts.append(oci_spec.FileMount(dest, "tmpfs", item.readonly, "tmpfs", item.tmpfs_options))
            continue
        source = Path(item.source)
        if not source.exists():
            raise InvalidArgumentError(f"mount source {item.source} does not exist", op="create", path=item.source)
        dest = rootfs_access.ensure_mountpoint(root, item.target, is_dir=source.is_dir())
        image_dir = root / dest.lstrip("/")
        if item.kind is MountKind.VOLUME and not any(source.iterdir()) and any(image_dir.iterdir()):
            rootfs_access.copy_up(image_dir, source)
        mounts.append(oci_spec.FileMount(dest, item.source, item.readonly))
    if plan.userns_base is not None:
        mounts = _idmapped_sources(plan, mounts)
    return tuple(mounts)


def _idmapped_sources(plan: RunPlan, mounts: list[oci_spec.FileMount]) -> list[oci_spec.FileMount]:
    """For a --userns container, volumes and bind mounts are shown through idmapped mounts under
    WORKLOAD/volumes/N, as the layers are: root in the container writes files that belong to root
    on the host, and sees the host's own owners, so a volume is shared with other workloads
    without a chown. A file system that cannot be idmapped keeps the plain bind mount (the
    container then sees its files as nobody and writes them as its mapped uids)."""
    assert plan.userns_base is not None
    base = Path(plan.workload_dir) / "volumes"
    shown: list[oci_spec.FileMount] = []
    with idmap.userns(plan.userns_base, USERNS_SIZE) as userns_fd:
        for index, item in enumerate(mounts):
            if item.fstype != "bind":
                shown.append(item)
                continue
            target = base / str(index)
            base.mkdir(mode=0o700, exist_ok=True)
            if Path(item.source).is_dir():
                target.mkdir(exist_ok=True)
            else:
                target.touch(exist_ok=True)
            try:
                if not is_mountpoint(str(target)):
                    idmap.idmapped_bind(item.source, str(target), userns_fd)
            except OSError as exc:
                log.info("volume %s is not idmapped for %s: %s", item.source, plan.id[:12], exc.strerror)
                shown.append(item)
                continue
            shown.append(replace(item, source=str(target)))
    return shown


def etc_texts(plan: RunPlan, host_hosts: str, host_resolv: str) -> dict[str, str]:
    """/etc/hostname, /etc/hosts (with --add-host) and /etc/resolv.conf (with --dns*) of a workload."""
    network = plan.network
    gateway = network.interfaces[0].gateway if network is not None and network.interfaces else ""
    hosts = network_model.hosts_file(network, plan.hostname, host_hosts)
    return {
        "/etc/hostname": f"{plan.hostname}\n",
        "/etc/hosts": hosts_with_extras(hosts, plan.host.extra_hosts, gateway),
        "/etc/resolv.conf": resolv_with(network_model.resolv_conf(network, host_resolv), plan.host.dns),
    }


def device_nodes(plan: RunPlan) -> tuple[oci_spec.DeviceNode, ...]:
    """--device: each host device node as it is (a symlink to it followed, as /dev/disk/by-id/… are)."""
    nodes = []
    for device in plan.host.devices:
        try:
            info = os.stat(device.host_path)
        except OSError as exc:
            raise InvalidArgumentError(f"--device {device.host_path}: {exc.strerror}", op="create",
                                       path=device.host_path) from exc
        if not (stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)):
            raise InvalidArgumentError(f"--device {device.host_path} is not a device node", op="create",
                                       path=device.host_path)
        nodes.append(oci_spec.DeviceNode(
            path=device.container_path, kind="c" if stat.S_ISCHR(info.st_mode) else "b",
            major=os.major(info.st_rdev), minor=os.minor(info.st_rdev), file_mode=stat.S_IMODE(info.st_mode),
            permissions=device.permissions, uid=(plan.userns_base or 0), gid=(plan.userns_base or 0)))
    return tuple(nodes)


def write_etc_files(plan: RunPlan, directory: Path) -> dict[str, Path]:
    files = etc_texts(plan, _host_text("/etc/hosts"), _host_text("/etc/resolv.conf"))
    written = {}
    for destination, text in files.items():
        path = directory / destination.rsplit("/", 1)[1]
        path.write_text(text)
        path.chmod(0o644)
        written[destination] = path
    return written


def rewrite_etc_files(plan: RunPlan) -> None:
    """/etc/hosts and /etc/resolv.conf again (networks joined or left), written in place: the container
    has them bind-mounted, and a running one sees the new content at once."""
    directory = Path(plan.workload_dir) / "etc"
    texts = {
        "hosts": network_model.hosts_file(plan.network, plan.hostname, _host_text("/etc/hosts")),
        "resolv.conf": network_model.resolv_conf(plan.network, _host_text("/etc/resolv.conf")),
    }
    for name, text in texts.items():
        with open(directory / name, "r+") as handle:
            handle.truncate(0)
            handle.write(text)


def _host_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def security_profile(plan: RunPlan) -> tuple[tuple[str, ...], dict[str, Any] | None]:
    """Capabilities (Docker's defaults ± flags, never beyond what isobox itself holds) and the seccomp filter."""
    wanted = capabilities.resolve_caps(plan.security.cap_add, plan.security.cap_drop, plan.security.privileged)
    bounding = bounding_capabilities()
    held = tuple(c for c in wanted if bounding >> capabilities.capability_number(c) & 1)
    missing = sorted(set(wanted) - set(held))
    explicit = {capabilities.normalize(c) for c in plan.security.cap_add} & set(missing)
    if explicit:
        raise InvalidArgumentError(
            f"cannot add {', '.join(sorted(explicit))}: isobox itself does not hold it on this host", op="create"
        )
    if missing:
        log.info("capabilities isobox does not hold, left out: %s", ", ".join(missing))
    choice = plan.security.seccomp_profile
    if plan.security.privileged or choice == "unconfined":
        return held, None
    profile = seccomp.load_profile(Path(choice) if choice else SECCOMP_PROFILE)
    converted = seccomp.to_oci(profile, held, arch=os.uname().machine, kernel=kernel_version())
    if not x32_abi_enabled():
        # No process can make an x32 call on this kernel: a filter for that ABI would only cost runc
        # time to compile (a third of the whole filter).
        converted = seccomp.without_architecture(converted, "SCMP_ARCH_X32")
    return held, seccomp.harden(converted, held)


def prepare(plan: RunPlan, runtime_name: str) -> dict[str, str]:
    """Everything `runtime create` needs, under plan.workload_dir; nothing is left behind on failure."""
    bundle = Path(plan.workload_dir)
    with ExitStack() as undo:
        bundle.mkdir(parents=True, exist_ok=False)
        undo.callback(discard_tree, bundle)
        for sub in ("upper", "work", "rootfs", "persist", "etc"):
            # upper/ becomes the container's "/" (overlayfs takes the upper dir's mode): 0755, like an image root.
            (bundle / sub).mkdir(mode=0o755 if sub in ("rootfs", "upper") else 0o700)
        if plan.userns_base is not None:  # the container's root owns its "/" and what it writes
            os.chown(bundle / "upper", plan.userns_base, plan.userns_base)
            bundle.chmod(0o711)
        mount_rootfs(plan)
        undo.callback(unmount_rootfs, plan)
        root = rootfs_dir(plan)
        try:
            for destination in _DIR_DESTINATIONS:
                rootfs_access.ensure_mountpoint(root, destination, is_dir=True)
            etc = write_etc_files(plan, bundle / "etc")
            file_mounts = tuple(
                oci_spec.FileMount(rootfs_access.ensure_mountpoint(root, dest, is_dir=False), str(src))
                for dest, src in etc.items()
            ) + extra_mounts(plan, root)
            user = resolve_user(
                plan.process.user,
                rootfs_access.read_text_in_root(root, "/etc/passwd"),
                rootfs_access.read_text_in_root(root, "/etc/group"),
            )
            cwd = safe_cwd(root, plan.process.cwd)
        except OSError as exc:
            raise WorkloadError(f"cannot prepare the rootfs: {exc}", op="create", id=plan.id) from exc
        caps, seccomp_filter = security_profile(plan)
        from dataclasses import replace

        resolved_plan = replace(plan, process=replace(plan.process, cwd=cwd))
        config = oci_spec.build(
            resolved_plan,
            rootfs=str(root),
            user=user,
            capabilities=caps,
            seccomp=seccomp_filter,
            cgroups_path=cgroups.workload_path(plan.id),
            files=file_mounts,
            netns_path=plan.network.netns_path if plan.network else None,
            host=host_facts(),
            devices=device_nodes(plan),
        )
        if plan.network is not None and plan.network.mode is network_model.NetworkMode.HOST:
            # --network host: no network namespace entry at all, the container stays in the host's.
            namespaces = config["linux"]["namespaces"]
            config["linux"]["namespaces"] = [ns for ns in namespaces if ns["type"] != "network"]
        _write_json(bundle / "config.json", config)
        undo.pop_all()
    return {"runtime": runtime_name, "cgroup": cgroups.workload_path(plan.id)}


def apply_limits(plan: RunPlan, resources: Resources) -> None:
    """New limits in a running container's cgroup (only those that differ from the plan's); None lifts one."""
    current = plan.resources
    cgroup = cgroups.WorkloadCgroup.of(plan.id)
    memory = None if resources.memory_bytes == current.memory_bytes else (resources.memory_bytes or -1)
    quota = None if resources.cpus == current.cpus else (
        int(resources.cpus * oci_spec.CPU_PERIOD_US) if resources.cpus else -1)
    pids = None if resources.pids_limit == current.pids_limit else (resources.pids_limit or 0)
    cgroup.set_limits(memory_bytes=memory, cpu_quota_us=quota, cpu_period_us=oci_spec.CPU_PERIOD_US if quota else None,
                      pids_limit=pids)


def rewrite_resources(plan: RunPlan) -> None:
    """config.json's linux.resources from the plan, for the container's next start."""
    path = Path(plan.workload_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WorkloadError(f"cannot read the container's config: {exc}", op="update", path=str(path)) from exc
    config.setdefault("linux", {})["resources"] = oci_spec.resources_of(plan, host_facts(), device_nodes(plan))
    _write_json(path, config)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


def cleanup(plan: RunPlan) -> None:
    """Unmount and remove the bundle; tolerant of anything already gone."""
    try:
        unmount_rootfs(plan)
    except OSError as exc:
        raise WorkloadError(f"cannot unmount rootfs: {exc}", op="remove", path=str(rootfs_dir(plan))) from exc
    # runc removes the cgroup when it deletes the container; one left (runc killed, a crash) goes here. A
    # cgroup that stays busy is reported: leaving it silently would hide a process that did not end.
    cgroups.WorkloadCgroup.of(plan.id).remove()
    discard_tree(plan.workload_dir)  # the upper dir: whatever depth the container made
