"""Capability resolution follows Docker's --cap-add/--cap-drop/--privileged rules."""

from __future__ import annotations

import pytest

from isobox.drivers.container.capabilities import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    capability_number,
    normalize,
    resolve_caps,
)
from isobox.errors import InvalidArgumentError

DOCKER_DEFAULTS = {
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
}  # fmt: skip


def test_default_set_is_dockers() -> None:
    assert {c.removeprefix("CAP_") for c in DEFAULT_CAPABILITIES} == DOCKER_DEFAULTS
    assert len(DEFAULT_CAPABILITIES) == 14


def test_all_capabilities_are_in_kernel_order() -> None:
    assert len(ALL_CAPABILITIES) == 41
    assert len(set(ALL_CAPABILITIES)) == 41
    assert ALL_CAPABILITIES[0] == "CAP_CHOWN"
    assert capability_number("sys_admin") == 21
    assert capability_number("CAP_AUDIT_WRITE") == 29
    assert capability_number("checkpoint_restore") == 40


def test_no_flags_gives_defaults_in_kernel_order() -> None:
    caps = resolve_caps()
    assert caps == DEFAULT_CAPABILITIES
    assert list(caps) == sorted(caps, key=capability_number)


@pytest.mark.parametrize("spelling", ["SYS_ADMIN", "sys_admin", "CAP_SYS_ADMIN", "cap_sys_admin", " Sys_Admin "])
def test_spellings(spelling: str) -> None:
    assert "CAP_SYS_ADMIN" in resolve_caps(cap_add=[spelling])
    assert normalize(spelling) == "CAP_SYS_ADMIN"


def test_add_and_drop() -> None:
    caps = resolve_caps(cap_add=["NET_ADMIN"], cap_drop=["chown", "CAP_MKNOD"])
    assert "CAP_NET_ADMIN" in caps
    assert "CAP_CHOWN" not in caps and "CAP_MKNOD" not in caps
    assert len(caps) == 14 - 2 + 1


def test_add_existing_is_not_duplicated() -> None:
    assert resolve_caps(cap_add=["chown", "CHOWN"]) == DEFAULT_CAPABILITIES


def test_add_all_minus_drop() -> None:
    caps = resolve_caps(cap_add=["all"], cap_drop=["SYS_ADMIN"])
    assert set(caps) == set(ALL_CAPABILITIES) - {"CAP_SYS_ADMIN"}


def test_drop_all_then_add() -> None:
    assert resolve_caps(cap_add=["kill", "net_bind_service"], cap_drop=["ALL"]) == (
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
    )
    assert resolve_caps(cap_drop=["ALL"]) == ()


def test_add_all_wins_over_drop_all() -> None:
    # Docker checks cap-add ALL first, then removes only the named capabilities of cap-drop.
    assert resolve_caps(cap_add=["ALL"], cap_drop=["ALL"]) == ALL_CAPABILITIES
    assert "CAP_KILL" not in resolve_caps(cap_add=["ALL"], cap_drop=["ALL", "KILL"])


def test_privileged_gets_everything_and_ignores_drops() -> None:
    assert resolve_caps(cap_drop=["ALL"], privileged=True) == ALL_CAPABILITIES


def test_privileged_respects_kernel_last_cap() -> None:
    caps = resolve_caps(privileged=True, last_cap=37)
    assert caps[-1] == "CAP_AUDIT_READ"
    assert len(caps) == 38


def test_add_all_respects_kernel_last_cap() -> None:
    assert "CAP_BPF" not in resolve_caps(cap_add=["ALL"], last_cap=37)


def test_add_unsupported_by_kernel_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"CAP_BPF.*cap_last_cap=37"):
        resolve_caps(cap_add=["BPF"], last_cap=37)
    # Dropping a capability the kernel lacks is harmless.
    assert resolve_caps(cap_drop=["BPF"], last_cap=37) == DEFAULT_CAPABILITIES


@pytest.mark.parametrize(("adds", "drops"), [(["SYS_WIZARD"], []), ([], ["cap_nope"])])
def test_unknown_name_is_named_in_error(adds: list[str], drops: list[str]) -> None:
    bad = (adds or drops)[0]
    with pytest.raises(InvalidArgumentError, match=bad):
        resolve_caps(cap_add=adds, cap_drop=drops)


def test_unknown_name_rejected_even_when_privileged() -> None:
    with pytest.raises(InvalidArgumentError):
        resolve_caps(cap_add=["typo"], privileged=True)


def test_capability_number_rejects_all() -> None:
    with pytest.raises(InvalidArgumentError):
        capability_number("ALL")


def test_negative_last_cap_rejected() -> None:
    with pytest.raises(InvalidArgumentError):
        resolve_caps(last_cap=-1)
