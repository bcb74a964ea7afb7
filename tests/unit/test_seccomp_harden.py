"""Docker-strength hardening on top of the host's containers-common profile."""

from __future__ import annotations

from isobox.drivers.container import seccomp

BASE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "syscalls": [
        {"names": ["read", "unshare", "mount", "clone", "clone3", "keyctl"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
    ],
}


def _allowed(profile: dict[str, object]) -> set[str]:
    rules = profile["syscalls"]
    assert isinstance(rules, list)
    return {n for r in rules if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}


def test_without_sys_admin_namespace_and_mount_calls_are_blocked() -> None:
    hardened = seccomp.harden(BASE, ("CAP_CHOWN",))
    assert _allowed(hardened) == {"read"}
    clone = next(r for r in hardened["syscalls"] if r["names"] == ["clone"])
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    clone3 = next(r for r in hardened["syscalls"] if r["names"] == ["clone3"])
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    assert {"names": ["setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1} in hardened["syscalls"]


def test_with_sys_admin_only_keyrings_stay_blocked() -> None:
    hardened = seccomp.harden(BASE, ("CAP_SYS_ADMIN",))
    assert _allowed(hardened) == {"read", "unshare", "mount", "clone", "clone3"}
