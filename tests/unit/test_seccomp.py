"""Converting Docker/containers seccomp profiles into the OCI linux.seccomp object."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from isobox.drivers.container.capabilities import DEFAULT_CAPABILITIES, resolve_caps
from isobox.drivers.container.seccomp import (
    DEFAULT_PROFILE_PATH,
    load_profile,
    parse_kernel_release,
    to_oci,
)
from isobox.errors import HostError, InvalidArgumentError

# A small profile in Docker's format, modelled on moby's profiles/seccomp/default.json.
SMALL: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}, "excludes": {}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "args": None, "includes": {"minKernel": "4.8"}},
        {"names": ["mount", "umount2"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["breakpoint"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
        {"names": ["sync_file_range"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["arm64"]}},
        {
            "names": ["chroot"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "excludes": {"caps": ["CAP_SYS_CHROOT"]},
        },
        {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errno": "ENOSYS"},
        {"names": ["old_thing"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
        },
        {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}},
    ],
}

NEW_KERNEL = (6, 1)
OLD_KERNEL = (4, 4)


def action(oci: dict[str, Any], syscall: str) -> str:
    """What a call of ``syscall`` (with any arguments) gets: the first unconditional rule, else default."""
    for rule in oci.get("syscalls", []):
        if syscall in rule["names"] and not rule.get("args"):
            return str(rule["action"])
    return str(oci["defaultAction"])


def names(oci: dict[str, Any]) -> set[str]:
    return {name for rule in oci.get("syscalls", []) for name in rule["names"]}


def test_top_level_fields() -> None:
    oci = to_oci(SMALL, DEFAULT_CAPABILITIES, "x86_64", NEW_KERNEL)
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO"
    assert oci["defaultErrnoRet"] == 1
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert "archMap" not in oci
    # Only OCI field names survive (config-linux.md "Seccomp").
    allowed_rule_keys = {"names", "action", "errnoRet", "args"}
    assert all(set(rule) <= allowed_rule_keys for rule in oci["syscalls"])


def test_mount_needs_cap_sys_admin() -> None:
    without = to_oci(SMALL, DEFAULT_CAPABILITIES, "x86_64", NEW_KERNEL)
    with_admin = to_oci(SMALL, resolve_caps(cap_add=["SYS_ADMIN"]), "x86_64", NEW_KERNEL)
    assert action(without, "mount") == "SCMP_ACT_ERRNO"
    assert action(with_admin, "mount") == "SCMP_ACT_ALLOW"
    assert action(with_admin, "umount2") == "SCMP_ACT_ALLOW"


def test_includes_caps_needs_all_of_them() -> None:
    only_admin = to_oci(SMALL, ["CAP_SYS_ADMIN"], "x86_64", NEW_KERNEL)
    both = to_oci(SMALL, ["CAP_SYS_ADMIN", "bpf"], "x86_64", NEW_KERNEL)
    assert "bpf" not in names(only_admin)
    assert action(both, "bpf") == "SCMP_ACT_ALLOW"


def test_excludes_caps_drops_the_deny_rule() -> None:
    default = to_oci(SMALL, DEFAULT_CAPABILITIES, "x86_64", NEW_KERNEL)
    no_chroot = to_oci(SMALL, resolve_caps(cap_drop=["SYS_CHROOT"]), "x86_64", NEW_KERNEL)
    assert "chroot" not in names(default)
    assert action(no_chroot, "chroot") == "SCMP_ACT_ERRNO"
    rule = next(r for r in no_chroot["syscalls"] if r["names"] == ["chroot"])
    assert rule["errnoRet"] == 1


def test_ptrace_needs_new_enough_kernel() -> None:
    assert action(to_oci(SMALL, (), "x86_64", NEW_KERNEL), "ptrace") == "SCMP_ACT_ALLOW"
    assert action(to_oci(SMALL, (), "x86_64", (4, 8)), "ptrace") == "SCMP_ACT_ALLOW"
    assert "ptrace" not in names(to_oci(SMALL, (), "x86_64", (4, 7)))
    assert "ptrace" not in names(to_oci(SMALL, (), "x86_64", OLD_KERNEL))


def test_unknown_kernel_is_treated_as_old() -> None:
    oci = to_oci(SMALL, (), "x86_64")
    assert "ptrace" not in names(oci)
    assert "old_thing" in names(oci)


def test_excludes_min_kernel() -> None:
    assert "old_thing" in names(to_oci(SMALL, (), "x86_64", OLD_KERNEL))
    assert "old_thing" not in names(to_oci(SMALL, (), "x86_64", NEW_KERNEL))


def test_arch_filtering_x86_64() -> None:
    oci = to_oci(SMALL, (), "x86_64", NEW_KERNEL)
    assert "arch_prctl" in names(oci)
    assert "breakpoint" not in names(oci)
    assert "sync_file_range" in names(oci)


def test_arch_filtering_aarch64() -> None:
    oci = to_oci(SMALL, (), "aarch64", NEW_KERNEL)
    assert oci["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in names(oci)
    assert "breakpoint" in names(oci)
    assert "sync_file_range" not in names(oci)


def test_arch_missing_from_map_leaves_architectures_unset() -> None:
    oci = to_oci(SMALL, (), "s390x", NEW_KERNEL)
    assert "architectures" not in oci


def test_unknown_arch_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="vax"):
        to_oci(SMALL, (), "vax", NEW_KERNEL)


def test_args_are_kept() -> None:
    oci = to_oci(SMALL, (), "x86_64", NEW_KERNEL)
    rule = next(r for r in oci["syscalls"] if r["names"] == ["personality"])
    assert rule["args"] == [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]
    read = next(r for r in oci["syscalls"] if "read" in r["names"])
    assert "args" not in read


def test_symbolic_errno_is_resolved() -> None:
    oci = to_oci(SMALL, (), "x86_64", NEW_KERNEL)
    rule = next(r for r in oci["syscalls"] if r["names"] == ["kexec_load"])
    assert rule["errnoRet"] == errno.ENOSYS


def test_rule_order_is_kept() -> None:
    oci = to_oci(SMALL, ("CAP_SYS_ADMIN",), "x86_64", NEW_KERNEL)
    order = [r["names"][0] for r in oci["syscalls"]]
    assert order.index("read") < order.index("ptrace") < order.index("mount") < order.index("personality")


def test_input_is_not_modified() -> None:
    before = json.dumps(SMALL, sort_keys=True)
    to_oci(SMALL, ("CAP_SYS_ADMIN",), "x86_64", NEW_KERNEL)
    assert json.dumps(SMALL, sort_keys=True) == before


def test_legacy_name_and_architectures() -> None:
    legacy = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"name": "reboot", "action": "SCMP_ACT_KILL"}],
    }
    oci = to_oci(legacy, (), "x86_64", NEW_KERNEL)
    assert oci == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["reboot"], "action": "SCMP_ACT_KILL"}],
    }


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"syscalls": []}, "defaultAction"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["X"], "archMap": [{}]}, "archMap"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_KILL"}]}, "names no syscall"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "name": "b",
                                                           "action": "X"}]}, "both"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"]}]}, "no action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "returns no errno"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW",
                                                           "errnoRet": 1}]}, "returns no errno"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "ENOTANERRNO"}, "ENOTANERRNO"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "uint"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_KILL",
                                                           "includes": {"minKernel": "new"}}]}, "new"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_KILL",
                                                           "args": [{"index": 0}]}]}, "index, value and op"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": ["read"]}, "not an object"),
    ],
)  # fmt: skip
def test_malformed_profiles_rejected(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        to_oci(profile, (), "x86_64", NEW_KERNEL)


def test_parse_kernel_release() -> None:
    assert parse_kernel_release("6.1.0-18-amd64") == (6, 1)
    assert parse_kernel_release("4.8") == (4, 8)
    assert parse_kernel_release("5.15.0") == (5, 15)
    assert parse_kernel_release("6.10") > parse_kernel_release("6.9")
    with pytest.raises(InvalidArgumentError):
        parse_kernel_release("linux")


# -- loading ---------------------------------------------------------------------------------------


def test_missing_profile_names_path_and_package(tmp_path: Path) -> None:
    missing = tmp_path / "seccomp.json"
    with pytest.raises(HostError) as info:
        load_profile(missing)
    assert str(missing) in str(info.value)
    assert "containers-common" in str(info.value)
    assert info.value.path == str(missing)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_invalid_json_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidArgumentError, match="not valid JSON"):
        load_profile(bad)
    bad.write_text("[]")
    with pytest.raises(InvalidArgumentError, match="not a JSON object"):
        load_profile(bad)


def test_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "small.json"
    path.write_text(json.dumps(SMALL))
    assert load_profile(str(path)) == SMALL


# -- the host's real profile -----------------------------------------------------------------------

needs_host_profile = pytest.mark.skipif(
    not DEFAULT_PROFILE_PATH.is_file(), reason=f"{DEFAULT_PROFILE_PATH} not installed (containers-common)"
)


@pytest.fixture(scope="module")
def host_profile() -> dict[str, Any]:
    return load_profile()


@needs_host_profile
def test_host_profile_converts_for_default_caps(host_profile: dict[str, Any]) -> None:
    oci = to_oci(host_profile, DEFAULT_CAPABILITIES, "x86_64", NEW_KERNEL)
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO"
    assert oci["architectures"][0] == "SCMP_ARCH_X86_64"
    assert "SCMP_ARCH_X86" in oci["architectures"]
    # Every rule is valid OCI: non-empty names, an action, errnoRet only on errno actions.
    for rule in oci["syscalls"]:
        assert rule["names"] and rule["action"].startswith("SCMP_ACT_")
        assert set(rule) <= {"names", "action", "errnoRet", "args"}
        if "errnoRet" in rule:
            assert rule["action"] in {"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"}
    for common in ("read", "write", "execve", "clone", "exit_group", "openat"):
        assert action(oci, common) == "SCMP_ACT_ALLOW", common
    # x86-only rule kept, arm-only rule dropped.
    assert "arch_prctl" in names(oci)
    assert "arm_fadvise64_64" not in names(oci)
    json.dumps(oci)  # serialisable as config.json


@needs_host_profile
def test_host_profile_gates_syscalls_on_caps(host_profile: dict[str, Any]) -> None:
    # These syscalls are keyed on capabilities that Docker's default set lacks, in both Docker's
    # profile and containers-common's: without the capability the ERRNO rule applies.
    default = to_oci(host_profile, DEFAULT_CAPABILITIES, "x86_64", NEW_KERNEL)
    privileged = to_oci(host_profile, resolve_caps(privileged=True), "x86_64", NEW_KERNEL)
    for syscall in ("bpf", "init_module", "open_by_handle_at", "acct", "iopl", "settimeofday"):
        assert action(default, syscall) == "SCMP_ACT_ERRNO", syscall
        assert action(privileged, syscall) == "SCMP_ACT_ALLOW", syscall


@needs_host_profile
def test_host_profile_arm64(host_profile: dict[str, Any]) -> None:
    oci = to_oci(host_profile, DEFAULT_CAPABILITIES, "aarch64", NEW_KERNEL)
    assert oci["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arm_fadvise64_64" in names(oci)
    assert "arch_prctl" not in names(oci)
