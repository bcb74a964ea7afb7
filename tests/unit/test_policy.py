"""The isolation policy model: every rule kind decides as docs/policy.md says; the file is checked strictly."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from isobox.errors import InvalidArgumentError, PolicyError
from isobox.model.policy import Action, Facts, Policy, enforce, parse_policy
from isobox.model.spec import Kind

BASE = Facts(
    image="docker.io/library/busybox:latest",
    registry="docker.io",
    repository="docker.io/library/busybox",
    digests=("sha256:" + "a" * 64, "sha256:" + "b" * 64),
    user="",
    runs_as_root=True,
)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def policy(rules: str, default: str = "container") -> Policy:
    return parse_policy(tomllib.loads(f'default = "{default}"\n' + rules), "test.toml")


def one_rule(conditions: str, action: str = "vm") -> Policy:
    return policy(f'[[rule]]\nname = "r"\naction = "{action}"\n{conditions}\n')


def decides(conditions: str, facts: Facts) -> bool:
    """Whether the single rule with these conditions matches ``facts`` (else the default decides)."""
    return one_rule(conditions).decide(facts).rule == "r"


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # (conditions, facts for which the rule matches, facts for which it does not)
    ('registry = ["docker.io"]', {}, {"registry": "ghcr.io"}),
    ('registry = ["*.example.com"]', {"registry": "reg.example.com"}, {}),
    ('not_registry = ["registry.example.com"]', {}, {"registry": "registry.example.com"}),
    ('repository = ["docker.io/library/*"]', {}, {"repository": "docker.io/someone/busybox"}),
    ("digest_pinned = true", {"digest_pinned": True}, {}),
    ("digest_pinned = false", {}, {"digest_pinned": True}),
    (f'digests = ["sha256:{"b" * 64}"]', {}, {"digests": ("sha256:" + "c" * 64,)}),
    (f'not_digests = ["sha256:{"a" * 64}"]', {"digests": ("sha256:" + "c" * 64,)}, {}),
    ("privileged = true", {"privileged": True}, {}),
    ('cap_add = ["SYS_*"]', {"cap_add": ("NET_RAW", "SYS_ADMIN")}, {"cap_add": ("NET_RAW",)}),
    ('cap_add = ["cap_sys_admin"]', {"cap_add": ("SYS_ADMIN",)}, {}),
    ("host_mounts = true", {"host_mounts": ("/srv",)}, {}),
    ('host_mount_paths = ["/etc*"]', {"host_mounts": ("/srv", "/etc")}, {"host_mounts": ("/srv",)}),
    ("host_network = true", {"host_network": True}, {}),
    ('labels = { tier = "untrusted*" }', {"labels": (("tier", "untrusted-x"),)}, {"labels": (("tier", "ok"),)}),
    ('labels = { tier = "*", team = "a" }', {"labels": (("team", "a"), ("tier", "x"))}, {"labels": (("tier", "x"),)}),
    ('not_labels = { trust = "high" }', {}, {"labels": (("trust", "high"),)}),
    ('user = ["root", "0*"]', {}, {"user": "app"}),
    ('user = ["app"]', {"user": "app"}, {}),
    ("runs_as_root = true", {}, {"runs_as_root": False}),
    ("runs_as_root = false", {"runs_as_root": False}, {}),
    ('scan = ["setuid", "secret_env"]', {"findings": ("setuid",)}, {"findings": ("setgid",)}),
    ('not_scan = ["world_writable"]', {"findings": ()}, {"findings": ("world_writable",)}),
    ('packages = ["openssh-*"]', {"packages": ("bash", "openssh-server")}, {"packages": ("bash",)}),
]


@pytest.mark.parametrize(("conditions", "matching", "other"), CASES, ids=[c[0] for c in CASES])
def test_each_condition_decides_as_documented(
    conditions: str, matching: dict[str, Any], other: dict[str, Any]
) -> None:
    assert decides(conditions, replace(BASE, **matching))
    assert not decides(conditions, replace(BASE, **other))


def test_first_matching_rule_wins_and_all_conditions_must_hold() -> None:
    rules = policy(
        """
[[rule]]
name = "both"
action = "refuse"
privileged = true
registry = ["ghcr.io"]

[[rule]]
name = "privileged"
action = "vm"
privileged = true

[[rule]]
name = "anything"
action = "container"
""",
        default="refuse",
    )
    assert rules.decide(replace(BASE, privileged=True)).rule == "privileged"
    assert rules.decide(replace(BASE, privileged=True, registry="ghcr.io")).rule == "both"
    assert rules.decide(BASE).rule == "anything"


def test_default_decides_when_no_rule_matches() -> None:
    decision = one_rule("privileged = true").decide(BASE)
    assert (decision.rule, decision.action) == ("default", Action.CONTAINER)
    assert "no rule matched" in decision.reason
    assert Policy().decide(BASE).reason == "no policy file: the default is container"


def test_decision_reason_names_what_matched_and_the_authors_reason() -> None:
    rules = policy(
        '[[rule]]\nname = "p"\naction = "vm"\nreason = "house rule"\nprivileged = true\ncap_add = ["NET_*"]\n'
    )
    decision = rules.decide(replace(BASE, privileged=True, cap_add=("NET_ADMIN",)))
    assert "requests --privileged" in decision.reason
    assert "--cap-add NET_ADMIN" in decision.reason
    assert decision.reason.endswith("(house rule)")


def test_explanation_of_a_rule_that_did_not_match() -> None:
    rule = one_rule('registry = ["docker.io"]\nprivileged = true').rules[0]
    failing = rule.first_failing(BASE)
    assert str(failing) == "privileged = true"
    assert rule.first_failing(replace(BASE, privileged=True)) is None


def test_enforce_explicit_flags() -> None:
    vm = one_rule("", action="vm").decide(BASE)
    container = one_rule("", action="container").decide(BASE)
    refuse = one_rule("", action="refuse").decide(BASE)
    assert enforce(vm, None) is Kind.VM
    assert enforce(vm, Kind.VM) is Kind.VM
    with pytest.raises(PolicyError, match=r"--container is not allowed: policy rule 'r' requires a VM"):
        enforce(vm, Kind.CONTAINER)
    assert enforce(container, None) is Kind.CONTAINER
    assert enforce(container, Kind.VM) is Kind.VM  # more isolation is never refused
    for requested in (None, Kind.CONTAINER, Kind.VM):
        with pytest.raises(PolicyError, match=r"refused by policy rule 'r'"):
            enforce(refuse, requested)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rule]]\nname = "a"\naction = "vm"\nprivilged = true', r"unknown condition 'privilged'"),
        ('[[rule]]\nname = "a"\naction = "vm"\nsigned_by = ["key"]', r"cannot verify image signatures"),
        ('[[rule]]\naction = "vm"', r"rule 1 needs a name"),
        ('[[rule]]\nname = "default"\naction = "vm"', r"needs a name"),
        ('[[rule]]\nname = "a"', r"rule 'a' needs an action"),
        ('[[rule]]\nname = "a"\naction = "maybe"', r"action 'maybe' is not one of"),
        ('[[rule]]\nname = "a"\naction = "vm"\n[[rule]]\nname = "a"\naction = "vm"', r"unique: a"),
        ('[[rule]]\nname = "a"\naction = "vm"\nscan = ["rootkit"]', r"unknown scan finding\(s\) rootkit"),
        ('[[rule]]\nname = "a"\naction = "vm"\nnot_privileged = true', r"unknown condition 'not_privileged'"),
        ('[[rule]]\nname = "a"\naction = "vm"\nprivileged = "yes"', r"privileged must be true or false"),
        ('[[rule]]\nname = "a"\naction = "vm"\nregistry = []', r"non-empty list of strings"),
        ('[[rule]]\nname = "a"\naction = "vm"\nlabels = ["x"]', r"labels must be a table"),
        ('rules = []', r"unknown top-level key"),
        ('default = "sometimes"', r"action 'sometimes'"),
    ],
)
def test_mistakes_in_the_file_are_errors_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as caught:
        parse_policy(tomllib.loads(text), "/etc/isobox/policy.toml")
    assert caught.value.path == "/etc/isobox/policy.toml"


def test_scan_is_needed_only_by_scan_and_package_conditions() -> None:
    assert not one_rule("privileged = true").needs_scan
    assert one_rule('scan = ["setuid"]').needs_scan
    assert one_rule('not_packages = ["x"]').needs_scan


def test_the_example_in_the_docs_parses_and_decides() -> None:
    text = DOCS.read_text()
    block = text[text.index("    # /etc/isobox/policy.toml") :].split("\n\n###", 1)[0]
    example = parse_policy(tomllib.loads(re.sub(r"^    ", "", block, flags=re.MULTILINE)), "docs")
    assert example.default is Action.VM
    assert example.decide(replace(BASE, privileged=True)).action is Action.REFUSE
    assert example.decide(replace(BASE, host_mounts=("/srv",))).rule == "host-mounts-in-vm"
    pinned = replace(BASE, registry="registry.example.com", digest_pinned=True)
    assert example.decide(pinned).rule == "pinned-from-my-registry"
    reviewed = replace(BASE, digests=("sha256:3348d0375b94f1bd985b33ed51d7a73a43d7c5a7ee7d3929a67cc486bb214312",))
    assert example.decide(reviewed).action is Action.CONTAINER
    assert example.decide(BASE).rule == "default"


def test_negated_condition_explains_itself() -> None:
    decision = one_rule('not_registry = ["ghcr.io", "quay.io"]').decide(BASE)
    assert (decision.rule, decision.reason) == ("r", 'registry does not match ["ghcr.io", "quay.io"]')
