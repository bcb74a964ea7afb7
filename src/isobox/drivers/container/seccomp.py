"""The default seccomp profile: load the host's containers profile and convert it to OCI form.

isobox does not ship its own syscall list. It uses the profile that the containers-common package
installs at ``/usr/share/containers/seccomp.json`` (on Debian: ``golang-github-containers-common``,
pulled in by podman), which podman and CRI-O use; it derives from Docker's default profile.

That file is in the *Docker/containers profile format*, which has conditions that the OCI runtime
spec does not: each syscall rule may carry ``includes``/``excludes`` on capabilities, architectures
and a minimum kernel, and the architectures come as an ``archMap`` (native arch -> sub-arches).
:func:`to_oci` evaluates those conditions for one container (its capability set, the host arch and
kernel) and returns the plain ``linux.seccomp`` object of the OCI runtime spec (config-linux.md,
"Seccomp"), as moby's ``profiles/seccomp/seccomp_linux.go`` ``setupSeccomp`` and containers/common
``pkg/seccomp`` do.

Everything here is pure except :func:`load_profile`, which reads the profile file.
"""

from __future__ import annotations

import errno
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from isobox.errors import HostError, InvalidArgumentError

DEFAULT_PROFILE_PATH = Path("/usr/share/containers/seccomp.json")
PROFILE_PACKAGE = "containers-common (Debian: golang-github-containers-common, installed with podman)"

# uname -m (and Go GOARCH spellings) -> (name used in a profile's includes/excludes "arches",
# libseccomp architecture constant). The profile names are libseccomp's own arch strings as mapped
# by moby's goToNative/nativeToSeccomp tables (seccomp_linux.go): note "amd64" and "x86", not
# "x86_64" and "386".
_ARCHES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "amd64": ("amd64", "SCMP_ARCH_X86_64"),
    "i386": ("x86", "SCMP_ARCH_X86"),
    "i686": ("x86", "SCMP_ARCH_X86"),
    "386": ("x86", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "arm64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "armv6l": ("arm", "SCMP_ARCH_ARM"),
    "arm": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "ppc64": ("ppc64", "SCMP_ARCH_PPC64"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "loongarch64": ("loong64", "SCMP_ARCH_LOONGARCH64"),
    "loong64": ("loong64", "SCMP_ARCH_LOONGARCH64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
}

# config-linux.md, "Seccomp": errnoRet/defaultErrnoRet only make sense for actions that return an
# errno, and "when the action doesn't support an errno, the runtime MUST print an error and fail".
# We refuse such a profile here, where the error can name the rule, instead of at `runc create`.
_ERRNO_ACTIONS = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})

# Top-level fields copied unchanged when present (same names in both formats; config-linux.md).
_PASSTHROUGH = ("flags", "listenerPath", "listenerMetadata")

_OP = "convert seccomp profile"


def load_profile(path: Path | str = DEFAULT_PROFILE_PATH) -> dict[str, Any]:
    """Read a Docker/containers-format seccomp profile (JSON object) from ``path``.

    Raises HostError if the file is missing or unreadable (naming the package that provides the
    default one) and InvalidArgumentError if it is not a JSON object.
    """
    path = Path(path)
    op = "load seccomp profile"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise HostError(
            f"seccomp profile {path} not found; the default profile is provided by {PROFILE_PACKAGE}",
            op=op,
            path=str(path),
        ) from exc
    except OSError as exc:
        raise HostError(f"cannot read seccomp profile {path}: {exc.strerror}", op=op, path=str(path)) from exc
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"seccomp profile {path} is not valid JSON: {exc}", op=op, path=str(path)) from exc
    if not isinstance(profile, dict):
        raise InvalidArgumentError(f"seccomp profile {path} is not a JSON object", op=op, path=str(path))
    return profile


def parse_kernel_release(release: str) -> tuple[int, int]:
    """``"6.1.0-18-amd64"`` (``uname -r``) or ``"4.8"`` (a profile's minKernel) -> ``(6, 1)``."""
    match = re.match(r"\s*(\d+)\.(\d+)", release)
    if match is None:
        raise InvalidArgumentError(f"cannot parse kernel version {release!r}", op=_OP)
    return int(match.group(1)), int(match.group(2))


def to_oci(
    profile: Mapping[str, Any],
    caps: Iterable[str],
    arch: str = "x86_64",
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Convert a Docker/containers seccomp profile into the OCI ``linux.seccomp`` object.

    ``caps`` is the container's capability set (``CAP_*`` names, e.g. from
    :func:`isobox.drivers.container.capabilities.resolve_caps`); ``arch`` the host machine as
    ``uname -m`` prints it; ``kernel`` the running kernel's ``(major, minor)``. When ``kernel`` is
    None, rules conditioned on ``minKernel`` are treated as "kernel too old", the conservative
    choice (fewer syscalls allowed).

    Rule selection follows moby's setupSeccomp exactly: a rule is dropped if the arch is in
    ``excludes.arches``, if *any* of ``excludes.caps`` is held, if the kernel is at least
    ``excludes.minKernel``, if the arch is not in a non-empty ``includes.arches``, if *any* of
    ``includes.caps`` is missing, or if the kernel is older than ``includes.minKernel``.
    Rule order is kept.
    """
    arch_name, scmp_arch = _arch(arch)
    held = {_cap_name(cap) for cap in caps}
    default_action = profile.get("defaultAction")
    if not isinstance(default_action, str) or not default_action:
        raise InvalidArgumentError("seccomp profile has no defaultAction", op=_OP)

    oci: dict[str, Any] = {"defaultAction": default_action}
    default_errno = _errno_ret(profile, "defaultErrnoRet", "defaultErrno", default_action, "defaultAction")
    if default_errno is not None:
        oci["defaultErrnoRet"] = default_errno
    architectures = _architectures(profile, scmp_arch)
    if architectures:
        oci["architectures"] = architectures
    for key in _PASSTHROUGH:
        if profile.get(key):
            oci[key] = profile[key]

    syscalls: list[dict[str, Any]] = []
    for index, rule in enumerate(profile.get("syscalls") or []):
        if not isinstance(rule, Mapping):
            raise InvalidArgumentError(f"seccomp rule #{index} is not an object", op=_OP)
        if _applies(rule, arch_name, held, kernel, index):
            syscalls.append(_convert_rule(rule, index))
    if syscalls:
        oci["syscalls"] = syscalls
    return oci


def _arch(arch: str) -> tuple[str, str]:
    try:
        return _ARCHES[arch]
    except KeyError:
        raise InvalidArgumentError(
            f"unsupported architecture {arch!r} for seccomp (known: {', '.join(sorted(_ARCHES))})", op=_OP
        ) from None


def without_architecture(profile: dict[str, Any], scmp_arch: str) -> dict[str, Any]:
    """The OCI profile without one architecture (e.g. an ABI the kernel does not have)."""
    arches = [a for a in profile.get("architectures") or [] if a != scmp_arch]
    return {**profile, "architectures": arches} if "architectures" in profile else dict(profile)


def _cap_name(cap: str) -> str:
    # Profiles spell capabilities "CAP_SYS_ADMIN"; accept "sys_admin" from callers too.
    upper = cap.strip().upper()
    return upper if upper.startswith("CAP_") else f"CAP_{upper}"


def _architectures(profile: Mapping[str, Any], scmp_arch: str) -> list[str]:
    """The OCI ``architectures`` list: the native arch and its sub-arches from ``archMap``.

    Sub-architectures matter: without SCMP_ARCH_X86 in the filter, a 32-bit binary on x86_64 would
    hit the default action for every syscall (libseccomp adds only the native arch by default).
    """
    legacy = profile.get("architectures") or []
    arch_map = profile.get("archMap") or []
    if legacy and arch_map:
        # moby rejects this combination too; which one wins would be a guess.
        raise InvalidArgumentError("seccomp profile sets both 'architectures' and 'archMap'", op=_OP)
    if legacy:
        return [str(a) for a in legacy]
    for entry in arch_map:
        if isinstance(entry, Mapping) and entry.get("architecture") == scmp_arch:
            return [scmp_arch, *(str(sub) for sub in entry.get("subArchitectures") or [])]
    # Not in the map: leave architectures unset, so the runtime filters for the native arch only.
    return []


def _applies(
    rule: Mapping[str, Any], arch_name: str, held: set[str], kernel: tuple[int, int] | None, index: int
) -> bool:
    excludes = rule.get("excludes") or {}
    includes = rule.get("includes") or {}
    if arch_name in (excludes.get("arches") or []):
        return False
    if any(_cap_name(cap) in held for cap in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and _kernel_at_least(kernel, excludes["minKernel"], index):
        return False
    inc_arches = includes.get("arches") or []
    if inc_arches and arch_name not in inc_arches:
        return False
    if any(_cap_name(cap) not in held for cap in includes.get("caps") or []):
        return False
    return not (includes.get("minKernel") and not _kernel_at_least(kernel, includes["minKernel"], index))


def _kernel_at_least(kernel: tuple[int, int] | None, min_kernel: object, index: int) -> bool:
    if not isinstance(min_kernel, str):
        raise InvalidArgumentError(
            f"seccomp rule #{index}: minKernel must be a string like '4.8', got {min_kernel!r}", op=_OP
        )
    wanted = parse_kernel_release(min_kernel)
    return kernel is not None and kernel >= wanted


def _convert_rule(rule: Mapping[str, Any], index: int) -> dict[str, Any]:
    names = _names(rule, index)
    action = rule.get("action")
    if not isinstance(action, str) or not action:
        raise InvalidArgumentError(f"seccomp rule #{index} ({names[0]}) has no action", op=_OP)
    out: dict[str, Any] = {"names": names, "action": action}
    errno_ret = _errno_ret(rule, "errnoRet", "errno", action, f"rule #{index} ({names[0]})")
    if errno_ret is not None:
        out["errnoRet"] = errno_ret
    args = [_convert_arg(arg, index) for arg in rule.get("args") or []]
    if args:
        out["args"] = args
    return out


def _names(rule: Mapping[str, Any], index: int) -> list[str]:
    # The old Docker format had a single "name"; both at once is ambiguous (moby refuses it too).
    name = rule.get("name")
    names = rule.get("names") or []
    if name and names:
        raise InvalidArgumentError(f"seccomp rule #{index} sets both 'name' and 'names'", op=_OP)
    result = [str(name)] if name else [str(n) for n in names]
    # config-linux.md: "names MUST contain at least one entry".
    if not result:
        raise InvalidArgumentError(f"seccomp rule #{index} names no syscall", op=_OP)
    return result


def _errno_ret(rule: Mapping[str, Any], number_key: str, name_key: str, action: str, what: str) -> int | None:
    """The errno for a rule: the numeric field, else the containers-format symbolic name."""
    value = rule.get(number_key)
    symbol = rule.get(name_key)
    if value is None and not symbol:
        return None
    if action not in _ERRNO_ACTIONS:
        raise InvalidArgumentError(f"seccomp {what}: {number_key} is set but action {action} returns no errno", op=_OP)
    if value is not None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgumentError(f"seccomp {what}: {number_key} must be a uint, got {value!r}", op=_OP)
        return value
    number = getattr(errno, str(symbol), None)
    if not isinstance(number, int):
        raise InvalidArgumentError(f"seccomp {what}: unknown errno name {symbol!r}", op=_OP)
    return number


def _convert_arg(arg: object, index: int) -> dict[str, Any]:
    # config-linux.md: index (uint), value (uint64), op are REQUIRED; valueTwo is OPTIONAL.
    if not isinstance(arg, Mapping) or "index" not in arg or "value" not in arg or not arg.get("op"):
        raise InvalidArgumentError(f"seccomp rule #{index}: argument {arg!r} needs index, value and op", op=_OP)
    out: dict[str, Any] = {"index": arg["index"], "value": arg["value"], "op": arg["op"]}
    if arg.get("valueTwo") is not None:
        out["valueTwo"] = arg["valueTwo"]
    return out


__all__ = [
    "DEFAULT_PROFILE_PATH",
    "PROFILE_PACKAGE",
    "load_profile",
    "parse_kernel_release",
    "to_oci",
]


# Syscalls that Docker's default profile allows only to a container holding CAP_SYS_ADMIN, but that the
# containers-common profile (written for Podman's rootless, nested use) allows to every container.
# Without CAP_SYS_ADMIN the kernel refuses most of them anyway; blocking them in seccomp as Docker does
# also closes the user-namespace door (unshare/clone with CLONE_NEWUSER), the largest kernel attack
# surface an unprivileged process can reach.
ADMIN_ONLY = frozenset(
    {
        "bpf",
        "fanotify_init",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "lookup_dcookie",
        "mount",
        "mount_setattr",
        "move_mount",
        "name_to_handle_at",
        "open_tree",
        "perf_event_open",
        "pivot_root",
        "quotactl",
        "quotactl_fd",
        "setdomainname",
        "sethostname",
        "setns",
        "syslog",
        "umount",
        "umount2",
        "unshare",
    }
)
# Docker allows neither (kernel keyrings are not namespaced).
NEVER = frozenset({"add_key", "keyctl", "request_key"})
# clone flags that create namespaces (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET), as in
# Docker's profile: clone is allowed only with none of them set.
CLONE_NAMESPACE_FLAGS = 0x7E020000
ENOSYS = 38


def harden(oci: dict[str, Any], caps: Iterable[str]) -> dict[str, Any]:
    """Tighten a converted profile to Docker's rules for namespace, mount and keyring syscalls."""
    if "CAP_SYS_ADMIN" in {_cap_name(cap) for cap in caps}:
        blocked = NEVER
        admin = True
    else:
        blocked = NEVER | ADMIN_ONLY | {"clone", "clone3"}
        admin = False
    rules: list[dict[str, Any]] = []
    for rule in oci.get("syscalls", []):
        if rule.get("action") == "SCMP_ACT_ALLOW":
            names = [n for n in rule["names"] if n not in blocked]
            if not names:
                continue
            rule = {**rule, "names": names}
        rules.append(rule)
    if not admin:
        rules.append(
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            }
        )
        # clone3 passes its flags in memory, which seccomp cannot read: answer ENOSYS so libc falls back to clone.
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {**oci, "syscalls": rules}
