"""The isolation policy at work: reading the policy file, gathering a workload's facts, deciding.

The policy file is ``/etc/isobox/policy.toml``, or the file named by ``ISOBOX_POLICY`` (the CLI's
``--policy FILE`` sets it). A missing default file means the built-in policy: every workload runs as
the kind asked for, a container when nothing was asked. A missing file that was named explicitly is
an error: a typo must not silently switch the policy off.

The policy is a guardrail for whoever runs isobox, not a boundary against them: isobox runs as root,
and root can name another policy file.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from isobox.config import policy_path
from isobox.errors import InvalidArgumentError, NotFoundError, PolicyError
from isobox.images import reference
from isobox.images.scan import PASSWD, ScanReport, read_image_file, scan_layers, user_is_root
from isobox.images.store import ImageRecord
from isobox.model.mounts import MountKind
from isobox.model.plan import merge_env
from isobox.model.policy import Decision, Facts, FindingKind, Policy, cap_names, enforce, parse_policy
from isobox.model.spec import Kind, WorkloadSpec
from isobox.service.context import Context
from isobox.state import codec

log = logging.getLogger(__name__)

MAX_POLICY_BYTES = 1024 * 1024
SCAN_CACHE_VERSION = 2  # bump when the scan finds more or reports differently


def load_policy(path: Path | None = None) -> Policy:
    """The policy in force: from ``path``, else ISOBOX_POLICY, else the default file if it exists."""
    explicit = path is not None
    if path is None:
        path, explicit = policy_path()
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)  # bounded: a path such as /dev/zero must not hang
    except FileNotFoundError:
        if explicit:
            raise NotFoundError(
                f"policy file {path} does not exist", op="read isolation policy", path=str(path)
            ) from None
        return Policy()
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot read policy file: {exc.strerror}", op="read isolation policy", path=str(path)
        ) from exc
    if len(data) > MAX_POLICY_BYTES:
        raise InvalidArgumentError("policy file is larger than 1 MiB", op="read isolation policy", path=str(path))
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgumentError(f"not valid TOML: {exc}", op="read isolation policy", path=str(path)) from exc
    return parse_policy(document, str(path))


def requested_kind(spec: WorkloadSpec) -> Kind | None:
    return None if spec.kind_by_policy else spec.kind


def scan_image(ctx: Context, record: ImageRecord, name: str = "") -> ScanReport:
    """The image's risk report; cached by image id (an image's layers and config never change)."""
    cached = ctx.paths.cache / "scan" / f"{record.id.split(':', 1)[-1]}.v{SCAN_CACHE_VERSION}.json"
    try:
        report = codec.loads(ScanReport, cached.read_text())
        return replace(report, image=name or report.image)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent, or written by another version: scan again
    report = scan_layers(
        ctx.images.layer_dirs(record), ctx.images.config(record), image=name or record.id, image_id=record.id
    )
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(codec.dumps(report))
        os.replace(partial, cached)
    except OSError as exc:
        log.warning("cannot cache the scan of %s: %s", record.id, exc)
    return report


def _reference_facts(ctx: Context, text: str, record: ImageRecord) -> tuple[str, str, str, bool]:
    """(name, registry, repository, pinned) of the image as the user named it.

    ``repo@digest`` counts as that repository, pinned, only when it is one of the image's RepoDigests
    (the image was pulled or pushed by that very repository and digest): an image that merely has the
    digest, stored by a pull from elsewhere, cannot be passed off as one of "registry.example.com/…" by
    writing that before its digest. An image named by id (or id prefix), or by a digest reference that
    is not its own, has no registry of its own: the first of its names stands in, and it counts as
    pinned (the content is fixed). A local `isobox tag` can give an image any name, so registry rules
    judge names, not provenance; digests are what pins content (docs/policy.md).
    """
    names = ctx.images.names(record.id)
    repo_digests = ctx.images.repo_digests(record.id)
    try:
        ref = reference.parse(text)
    except InvalidArgumentError:
        ref = None
    if ref is not None and ref.digest:
        if any(d.repository == ref.name and d.digest == ref.digest for d in repo_digests):
            return f"{ref.name}@{ref.digest}", ref.registry, ref.name, True
    elif ref is not None and str(ref) in names:
        return str(ref), ref.registry, ref.name, False
    known = names or [str(d) for d in repo_digests]
    if not known:
        return text, "", "", True
    first = reference.parse(known[0])
    return str(first), first.registry, first.name, True  # named by id: pinned to this very content


def image_digests(ctx: Context, record: ImageRecord) -> tuple[str, ...]:
    """Every digest that names the image's content: its RepoDigests' (index digests included, as users
    see and pin them), the image manifests behind them, and its id (the config digest)."""
    found: dict[str, None] = {}
    for digest in ctx.images.repo_digests(record.id):
        found[digest.digest] = None
        found[digest.manifest_digest] = None
    found[record.manifest_digest] = None
    found[record.id] = None
    return tuple(found)


def gather_facts(ctx: Context, spec: WorkloadSpec, record: ImageRecord, *, scan: bool) -> Facts:
    """What the policy looks at for ``spec`` run from the image ``record`` (scanned only when asked)."""
    name, registry, repository, pinned = _reference_facts(ctx, spec.image, record)
    config = ctx.images.config(record)
    user = spec.user if spec.user is not None else config.user
    report = scan_image(ctx, record, name) if scan else None
    passwd = _passwd(ctx, record) if user.split(":", 1)[0] not in ("", "0", "root") else None
    runs_as_root = user_is_root(user, passwd)
    findings = None
    if report is not None:
        # runs_as_root is the workload's, after --user, not only the image's default.
        findings = (report.kinds - {FindingKind.RUNS_AS_ROOT.value}) | (
            {FindingKind.RUNS_AS_ROOT.value} if runs_as_root else set()
        )
    return Facts(
        image=name,
        registry=registry,
        repository=repository,
        digest_pinned=pinned,
        digests=image_digests(ctx, record),
        privileged=spec.security.privileged,
        cap_add=cap_names(spec.security.cap_add),
        host_mounts=_host_paths(spec),
        host_network="host" in getattr(spec, "networks", ()),
        labels=merge_env(config.labels, spec.labels),
        user=user,
        runs_as_root=runs_as_root,
        findings=tuple(sorted(findings)) if findings is not None else None,
        packages=tuple(p.name for p in report.packages) if report is not None else (),
    )


def _host_paths(spec: WorkloadSpec) -> tuple[str, ...]:
    """Bind-mount sources as written and as resolved: `/tmp/../etc` or a symlink to /etc is /etc to a rule."""
    paths: dict[str, None] = {}
    for mount in spec.mounts:
        if mount.kind is MountKind.BIND:
            paths[mount.source] = None
            paths[os.path.realpath(mount.source)] = None
    return tuple(paths)


def _passwd(ctx: Context, record: ImageRecord) -> str | None:
    return read_image_file(ctx.images.layer_dirs(record), PASSWD)


def decide(ctx: Context, spec: WorkloadSpec, record: ImageRecord, policy: Policy | None = None) -> tuple[
    Decision, Facts
]:
    policy = policy or load_policy()
    facts = gather_facts(ctx, spec, record, scan=policy.needs_scan)
    return policy.decide(facts), facts


def apply(ctx: Context, spec: WorkloadSpec, image_id: str) -> WorkloadSpec:
    """``spec`` with the kind the policy decides; PolicyError when it refuses (naming the rule)."""
    policy = load_policy()
    if not policy.rules and not policy.source:
        return replace(spec, kind=requested_kind(spec) or Kind.CONTAINER, kind_by_policy=False)
    decision, _ = decide(ctx, spec, ctx.images.get(image_id), policy)
    kind = enforce(decision, requested_kind(spec))
    log.info("policy %s: rule %s decides %s: %s", policy.source, decision.rule, kind.value, decision.reason)
    return replace(spec, kind=kind, kind_by_policy=False)


@dataclass(frozen=True)
class Explanation:
    """A decision with what led to it, for `isobox policy explain`."""

    policy: str  # the file, or "" for the built-in policy
    decision: Decision
    kind: Kind | None  # what the workload would run as; None when refused
    refusal: str  # the PolicyError message when refused
    facts: Facts
    not_matched: tuple[tuple[str, str], ...]  # (rule, its first condition that does not hold), in order


def image_record(ctx: Context, image: str, *, pull: bool = False) -> ImageRecord:
    """An image of the store; the built-in busybox is installed on demand, anything else pulled if ``pull``."""
    from isobox.model.pull import PullPolicy

    try:
        return ctx.images.resolve(image)
    except NotFoundError:
        from isobox.images import builtin

        if image in ("busybox", "busybox:latest", builtin.BUILTIN_NAME):
            return builtin.install(ctx.images)
        if not pull:
            raise
    from isobox.service import images as image_service

    return image_service.ensure(ctx, image, policy=PullPolicy.MISSING)


def explain(ctx: Context, spec: WorkloadSpec, policy: Policy | None = None) -> Explanation:
    policy = policy or load_policy()
    decision, facts = decide(ctx, spec, image_record(ctx, spec.image), policy)
    not_matched = []
    for rule in policy.rules:
        if rule.name == decision.rule:
            break
        failing = rule.first_failing(facts)
        not_matched.append((rule.name, str(failing) if failing else ""))
    try:
        kind: Kind | None = enforce(decision, requested_kind(spec))
        refusal = ""
    except PolicyError as exc:
        kind, refusal = None, str(exc)
    return Explanation(policy.source, decision, kind, refusal, facts, tuple(not_matched))
