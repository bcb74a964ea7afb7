"""Linux capabilities for containers: the default set, the full set, and --cap-add/--cap-drop.

The rules follow Docker (moby ``oci/caps/utils.go`` ``TweakCapabilities``) so that a user's
``--cap-add``/``--cap-drop`` flags mean the same thing here as with docker or podman:

- ``--privileged`` gets every capability; cap-add and cap-drop are then ignored.
- Names are case-insensitive, with or without the ``CAP_`` prefix; ``ALL`` means every capability.
- ``--cap-add ALL`` starts from every capability and removes what ``--cap-drop`` names.
- ``--cap-drop ALL`` starts from nothing and adds what ``--cap-add`` names.
- Otherwise: the default set, minus cap-drop, plus cap-add.

The result is a tuple of ``CAP_*`` names in kernel number order, ready for the OCI runtime-spec
``process.capabilities`` sets (config.md, "Linux Process": ``bounding``, ``effective``, ``permitted``,
``ambient``) and for :func:`isobox.drivers.container.seccomp.to_oci`, whose rules depend on them.
Pure functions: the running kernel's last capability (``/proc/sys/kernel/cap_last_cap``) is read
elsewhere and passed in.
"""

from __future__ import annotations

from collections.abc import Iterable

from isobox.errors import InvalidArgumentError

# Every capability the kernel defines, in kernel number order (include/uapi/linux/capability.h,
# capabilities(7)); the index in this tuple is the capability number. CAP_CHECKPOINT_RESTORE (40,
# Linux 5.9) is the last one as of Linux 6.x.
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",  # 0
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",  # 5
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",  # 10
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",  # 15
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",  # 20
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",  # 25
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",  # 30
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",  # 35
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",  # 40
)

_NUMBER: dict[str, int] = {name: number for number, name in enumerate(ALL_CAPABILITIES)}

# Docker's default set (moby oci/caps/defaults.go DefaultCapabilities; podman ships the same list in
# containers.conf default_capabilities), kept in kernel number order. Notably absent: SYS_ADMIN,
# NET_ADMIN, SYS_PTRACE, SYS_MODULE, DAC_READ_SEARCH -- the default seccomp profile keys the syscalls
# they guard (mount, setns, bpf, open_by_handle_at ...) on the same names.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SYS_CHROOT",
    "CAP_MKNOD",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
)

ALL = "ALL"


def normalize(name: str) -> str:
    """Return the canonical ``CAP_*`` spelling of ``name`` (or ``ALL``).

    Accepts any case and an optional ``CAP_`` prefix, as ``docker run --cap-add`` does.
    Raises InvalidArgumentError naming the capability if the kernel has no such capability.
    """
    upper = name.strip().upper()
    if upper == ALL:
        return ALL
    canonical = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if canonical not in _NUMBER:
        raise InvalidArgumentError(
            f"unknown capability {name!r} (known: ALL, {', '.join(c[4:] for c in ALL_CAPABILITIES)})",
            op="resolve capabilities",
        )
    return canonical


def _normalize_all(names: Iterable[str]) -> set[str]:
    return {normalize(name) for name in names}


def _available(last_cap: int | None) -> tuple[str, ...]:
    # Asking runc for a capability the running kernel lacks makes it warn and drop it (runc >= 1.1)
    # or fail (older runtimes); Docker likewise derives "all" from /proc/sys/kernel/cap_last_cap.
    if last_cap is None:
        return ALL_CAPABILITIES
    if last_cap < 0:
        raise InvalidArgumentError(f"last_cap must be >= 0, got {last_cap}", op="resolve capabilities")
    return ALL_CAPABILITIES[: last_cap + 1]


def resolve_caps(
    cap_add: Iterable[str] = (),
    cap_drop: Iterable[str] = (),
    privileged: bool = False,
    *,
    last_cap: int | None = None,
) -> tuple[str, ...]:
    """Resolve ``--cap-add``/``--cap-drop``/``--privileged`` into the container's capability set.

    ``last_cap`` is the running kernel's highest capability number (``/proc/sys/kernel/cap_last_cap``);
    when given, "all capabilities" means those the kernel knows. Names are validated even when
    ``privileged`` makes them irrelevant, so a typo never passes silently.
    Returns ``CAP_*`` names in kernel number order, without duplicates.
    """
    adds = _normalize_all(cap_add)
    drops = _normalize_all(cap_drop)
    available = _available(last_cap)
    if privileged:
        return available
    unsupported = sorted(adds - set(available) - {ALL}, key=_NUMBER.__getitem__)
    if unsupported:
        # Docker refuses these too (it validates against the kernel's list); dropping them silently
        # would start a container without a capability the user explicitly asked for.
        raise InvalidArgumentError(
            f"capability {', '.join(unsupported)} is not supported by the running kernel (cap_last_cap={last_cap})",
            op="resolve capabilities",
        )
    if ALL in adds:
        chosen = set(available) - drops
    elif ALL in drops:
        chosen = adds - {ALL}
    else:
        chosen = (set(DEFAULT_CAPABILITIES) - drops) | adds
    return tuple(sorted(chosen, key=_NUMBER.__getitem__))


def capability_number(name: str) -> int:
    """The kernel's number for capability ``name`` (any spelling :func:`normalize` accepts)."""
    canonical = normalize(name)
    if canonical == ALL:
        raise InvalidArgumentError("ALL is not a single capability", op="capability number")
    return _NUMBER[canonical]


__all__ = [
    "ALL",
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "capability_number",
    "normalize",
    "resolve_caps",
]
