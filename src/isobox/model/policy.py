"""The isolation policy: ordered rules that choose container, VM or refusal per workload (pure, no I/O).

A policy is a list of rules and a default action. A rule is a name, an action and conditions; it
matches when all its conditions hold, and the first matching rule decides (as firewall rules do),
otherwise the default does. Conditions look at `Facts`, which service/policy.py gathers from the
request, the image record and, only when a rule asks for it, the image scan.

Every list-valued condition may be negated by prefixing its key with ``not_``: ``not_registry =
["registry.example.com"]`` holds for every image that is *not* from that registry. Negation is per
condition, not per pattern, so "none of the image's digests is in this list" is expressible.

The file format is documented, with an example, in docs/policy.md.
"""

from __future__ import annotations

import enum
import fnmatch
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from isobox.errors import InvalidArgumentError, PolicyError
from isobox.model.spec import Kind


class Action(enum.StrEnum):
    CONTAINER = "container"
    VM = "vm"
    REFUSE = "refuse"


class FindingKind(enum.StrEnum):
    """What an image scan reports and a ``scan = [...]`` condition can name."""

    RUNS_AS_ROOT = "runs_as_root"
    SETUID = "setuid"
    SETGID = "setgid"
    WORLD_WRITABLE = "world_writable"
    SECRET_ENV = "secret_env"
    SECRET_FILE = "secret_file"


@dataclass(frozen=True)
class Facts:
    """What a decision looks at, gathered by service/policy.py."""

    image: str  # the reference as normalized, e.g. docker.io/library/busybox:latest
    registry: str  # docker.io
    repository: str  # docker.io/library/busybox (registry included: globs can then name both)
    digest_pinned: bool = False  # the reference is one of the image's RepoDigests (repo@sha256:…), or its id
    digests: tuple[str, ...] = ()  # RepoDigests' digests (index ones too), their manifests', the id
    privileged: bool = False
    cap_add: tuple[str, ...] = ()  # canonical names without the CAP_ prefix: SYS_ADMIN, NET_ADMIN, ALL
    host_mounts: tuple[str, ...] = ()  # host paths bind-mounted into the workload
    host_network: bool = False  # --network host
    labels: tuple[tuple[str, str], ...] = ()  # the image's labels overridden by --label
    user: str = ""  # the effective user as written (--user, else the image's USER; "" = root)
    runs_as_root: bool = True
    findings: tuple[str, ...] | None = None  # scan finding kinds, sorted; None when no rule needed a scan
    packages: tuple[str, ...] = ()  # package names from the image's dpkg/apk database (scan)


@dataclass(frozen=True)
class Condition:
    """One condition of a rule: ``key`` as written in the file (``not_`` stripped) and its value."""

    key: str
    value: bool | tuple[str, ...] | tuple[tuple[str, str], ...]
    negated: bool = False

    def holds(self, facts: Facts) -> str | None:
        """Why the condition holds (a short phrase for explanations), or None when it does not."""
        why = _TESTS[self.key](self.value, facts)
        if self.negated:
            return None if why is not None else f"{self.key} does not match {_show(self.value)}"
        return why

    @property
    def needs_scan(self) -> bool:
        return self.key in ("scan", "packages")

    def __str__(self) -> str:
        return f"{'not_' if self.negated else ''}{self.key} = {_show(self.value)}"


@dataclass(frozen=True)
class Rule:
    name: str
    action: Action
    conditions: tuple[Condition, ...] = ()
    reason: str = ""  # the policy author's words, shown with the decision

    def first_failing(self, facts: Facts) -> Condition | None:
        """The first condition that does not hold (why the rule did not match), or None."""
        return next((c for c in self.conditions if c.holds(facts) is None), None)

    def match(self, facts: Facts) -> list[str] | None:
        """The reasons each condition holds, or None if one does not (no conditions: always matches)."""
        reasons = []
        for condition in self.conditions:
            why = condition.holds(facts)
            if why is None:
                return None
            reasons.append(why)
        return reasons


@dataclass(frozen=True)
class Decision:
    action: Action
    rule: str  # the deciding rule's name, or "default"
    reason: str

    @property
    def kind(self) -> Kind | None:
        return {Action.CONTAINER: Kind.CONTAINER, Action.VM: Kind.VM}.get(self.action)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    default: Action = Action.CONTAINER
    source: str = ""  # the file it was read from; "" when there is none (the built-in policy)

    @property
    def needs_scan(self) -> bool:
        return any(c.needs_scan for rule in self.rules for c in rule.conditions)

    def decide(self, facts: Facts) -> Decision:
        for rule in self.rules:
            reasons = rule.match(facts)
            if reasons is None:
                continue
            because = "; ".join(reasons) if reasons else "the rule has no conditions"
            if rule.reason:
                because = f"{because} ({rule.reason})"
            return Decision(rule.action, rule.name, because)
        what = "no policy file" if not self.source else "no rule matched"
        return Decision(self.default, "default", f"{what}: the default is {self.default.value}")


def enforce(decision: Decision, requested: Kind | None) -> Kind:
    """The kind a workload runs as: the decision, or the user's explicit choice where the decision allows it.

    ``vm`` forbids an explicit --container; ``container`` still allows an explicit --vm (asking for
    more isolation is never refused); ``refuse`` refuses both.
    """
    op = "apply isolation policy"
    if decision.action is Action.REFUSE:
        raise PolicyError(f"refused by policy rule {decision.rule!r}: {decision.reason}", op=op)
    if requested is Kind.CONTAINER and decision.action is Action.VM:
        raise PolicyError(
            f"--container is not allowed: policy rule {decision.rule!r} requires a VM: {decision.reason}", op=op
        )
    if requested is not None:
        return requested
    kind = decision.kind
    assert kind is not None  # REFUSE returned above
    return kind


# ---- conditions -------------------------------------------------------------------------------


def _globs(patterns: tuple[str, ...], values: tuple[str, ...]) -> str | None:
    hits = [v for v in values if any(fnmatch.fnmatchcase(v, p) for p in patterns)]
    return ", ".join(hits) if hits else None


def _show(value: object) -> str:
    """A condition's value as the policy file writes it (TOML)."""
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value) + " }"
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return str(value).lower()


def _pattern_test(name: str, values: Callable[[Facts], tuple[str, ...]]) -> Callable[[Any, Facts], str | None]:
    def test(patterns: tuple[str, ...], facts: Facts) -> str | None:
        hit = _globs(patterns, values(facts))
        return None if hit is None else f"{name} {hit} matches {_show(patterns)}"

    return test


def _bool_test(name: str, value: Callable[[Facts], bool]) -> Callable[[Any, Facts], str | None]:
    def test(expected: bool, facts: Facts) -> str | None:
        if value(facts) != expected:
            return None
        return name if expected else f"not {name}"

    return test


def _labels_test(wanted: tuple[tuple[str, str], ...], facts: Facts) -> str | None:
    have = dict(facts.labels)
    for key, pattern in wanted:
        if key not in have or not fnmatch.fnmatchcase(have[key], pattern):
            return None
    return "labels " + ", ".join(f"{k}={have[k]}" for k, _ in wanted)


def _scan_test(kinds: tuple[str, ...], facts: Facts) -> str | None:
    found = sorted(set(kinds) & set(facts.findings or ()))
    return f"the image scan found {', '.join(found)}" if found else None


_TESTS: dict[str, Callable[[Any, Facts], str | None]] = {
    "registry": _pattern_test("registry", lambda f: (f.registry,)),
    "repository": _pattern_test("repository", lambda f: (f.repository,)),
    "digests": _pattern_test("digest", lambda f: f.digests),
    "cap_add": _pattern_test("--cap-add", lambda f: f.cap_add),
    "host_mount_paths": _pattern_test("host mount", lambda f: f.host_mounts),
    "user": _pattern_test("user", lambda f: (f.user or "root",)),
    "packages": _pattern_test("package", lambda f: f.packages),
    "labels": _labels_test,
    "scan": _scan_test,
    "digest_pinned": _bool_test("the reference is pinned by digest", lambda f: f.digest_pinned),
    "privileged": _bool_test("requests --privileged", lambda f: f.privileged),
    "host_mounts": _bool_test("bind-mounts host paths", lambda f: bool(f.host_mounts)),
    "host_network": _bool_test("uses the host's network (--network host)", lambda f: f.host_network),
    "runs_as_root": _bool_test("runs as root", lambda f: f.runs_as_root),
}
_BOOL_KEYS = frozenset({"digest_pinned", "privileged", "host_mounts", "host_network", "runs_as_root"})
_RULE_KEYS = frozenset({"name", "action", "reason"})


# ---- parsing (from the TOML document, already read by service/policy.py) -----------------------


def parse_policy(document: Mapping[str, Any], source: str) -> Policy:
    """A Policy from a parsed policy file; every mistake is an InvalidArgumentError naming file and key."""
    unknown = set(document) - {"default", "rule", "version"}
    if unknown:
        raise _bad(source, f"unknown top-level key(s) {', '.join(sorted(unknown))} (expected default, [[rule]])")
    default = _action(document.get("default", "container"), source, "default")
    raw_rules = document.get("rule", [])
    if not isinstance(raw_rules, list):
        raise _bad(source, "rules are written as [[rule]] tables")
    rules = tuple(_rule(raw, index, source) for index, raw in enumerate(raw_rules, start=1))
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _bad(source, f"rule names must be unique: {', '.join(duplicates)}")
    return Policy(rules, default, source)


def _rule(raw: object, index: int, source: str) -> Rule:
    if not isinstance(raw, dict):
        raise _bad(source, f"rule {index} is not a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or name == "default":
        raise _bad(source, f"rule {index} needs a name (a non-empty string other than 'default')")
    where = f"rule {name!r}"
    if "action" not in raw:
        raise _bad(source, f"{where} needs an action (container, vm or refuse)")
    reason = raw.get("reason", "")
    if not isinstance(reason, str):
        raise _bad(source, f"{where}: reason must be a string")
    conditions = tuple(_condition(key, value, where, source) for key, value in raw.items() if key not in _RULE_KEYS)
    return Rule(name, _action(raw["action"], source, where), conditions, reason)


def _condition(key: str, value: object, where: str, source: str) -> Condition:
    if key in ("signed_by", "signature", "signed"):
        raise _bad(
            source,
            f"{where}: {key} is not supported: isobox cannot verify image signatures yet; "
            "pin trusted images with digests = [\"sha256:…\"] instead (see docs/policy.md)",
        )
    negated = key.startswith("not_")
    base = key.removeprefix("not_")
    if base not in _TESTS or (negated and base in _BOOL_KEYS):
        known = ", ".join(sorted(_TESTS))
        raise _bad(source, f"{where}: unknown condition {key!r} (known: {known}; list conditions take not_)")
    if base in _BOOL_KEYS:
        if not isinstance(value, bool):
            raise _bad(source, f"{where}: {key} must be true or false")
        return Condition(base, value)
    if base == "labels":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()) or not value:
            raise _bad(source, f"{where}: labels must be a table of label = \"glob\"")
        return Condition(base, tuple(sorted((str(k), str(v)) for k, v in value.items())), negated)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _bad(source, f"{where}: {key} must be a non-empty list of strings")
    items = tuple(value)
    if base == "scan":
        unknown = sorted(set(items) - {k.value for k in FindingKind})
        if unknown:
            choices = ", ".join(k.value for k in FindingKind)
            raise _bad(source, f"{where}: unknown scan finding(s) {', '.join(unknown)} (known: {choices})")
    if base == "cap_add":
        items = tuple(_cap_name(v) for v in items)
    return Condition(base, items, negated)


def _cap_name(text: str) -> str:
    upper = text.strip().upper()
    return upper.removeprefix("CAP_")


def _action(value: object, source: str, where: str) -> Action:
    try:
        return Action(str(value))
    except ValueError:
        raise _bad(source, f"{where}: action {value!r} is not one of container, vm, refuse") from None


def _bad(source: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, op="read isolation policy", path=source)


def cap_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """--cap-add values as policies name them: upper case, no CAP_ prefix (cap_add = ["SYS_ADMIN"])."""
    return tuple(_cap_name(n) for n in names)

