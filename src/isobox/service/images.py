"""Image operations for the CLI, the REST API and the Python API (which all call these, and only these).

Every function takes the Context first. Registry access options (``insecure``, ``ca_cert``) are per call;
ISOBOX_CA names a CA bundle trusted for every registry, and LIB/certs.d/HOST:PORT/ holds per-registry CAs
(as /etc/docker/certs.d does for Docker).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isobox.errors import ImagePullError, InvalidArgumentError, NotFoundError
from isobox.images import archive, builtin, reference
from isobox.images import platform as platforms
from isobox.images import pull as pulling
from isobox.images import push as pushing
from isobox.images.auth import Credentials, CredentialStore, normalize_registry
from isobox.images.registry import CERTS_DIRS, RegistryClient, RegistryOptions
from isobox.images.store import ImageRecord
from isobox.model.pull import PullPolicy
from isobox.service.context import Context, open_context
from isobox.state.locks import locked

ProgressFn = pulling.ProgressFn
PushProgressFn = pushing.ProgressFn


@dataclass(frozen=True)
class ImageSummary:
    id: str
    names: tuple[str, ...]
    size: int
    created: str
    platform: str
    repo_digests: tuple[str, ...] = ()  # repository@digest it was pulled or pushed by (Docker's RepoDigests)

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[-1][:12]


@dataclass(frozen=True)
class ImageDetails:
    record: ImageRecord
    names: tuple[str, ...]
    config: dict[str, Any]
    repo_digests: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistoryEntry:
    created: str
    created_by: str
    comment: str
    empty_layer: bool
    size: int  # compressed size of the layer this step made, 0 for metadata-only steps


@dataclass(frozen=True)
class PruneResult:
    layers_removed: int
    blobs_removed: int
    partials_removed: int


def install_builtin(ctx: Context | None = None) -> ImageRecord:
    context = ctx or open_context()
    # Shared gc lock from the first blob written until the commit, like a pull: prune cannot take them away.
    with locked(context.paths.locks, "gc", shared=True):
        return builtin.install(context.images)


# ---- registry access ---------------------------------------------------------------------------


def credential_store(ctx: Context) -> CredentialStore:
    return CredentialStore(ctx.paths.lib / "auth.json")


def registry_options(ctx: Context, *, insecure: bool = False, ca_cert: str | os.PathLike[str] | None = None
                     ) -> RegistryOptions:
    ca = ca_cert or os.environ.get("ISOBOX_CA") or None
    return RegistryOptions(
        insecure=insecure,
        ca_cert=Path(ca) if ca else None,
        certs_dirs=(ctx.paths.lib / "certs.d", *CERTS_DIRS),
        credentials=credential_store(ctx),
    )


def pull(ctx: Context, name: str, *, platform: str | None = None, insecure: bool = False,
         ca_cert: str | os.PathLike[str] | None = None, progress: ProgressFn | None = None) -> ImageRecord:
    """Pull ``name`` (Docker naming: busybox → docker.io/library/busybox:latest) into the store."""
    ref = reference.parse(name)
    wanted = platforms.parse(platform) if platform else None
    with RegistryClient(ref.registry, registry_options(ctx, insecure=insecure, ca_cert=ca_cert)) as client:
        record = pulling.pull(ctx.images, client, ref, wanted=wanted, progress=progress)
    image_event(ctx, "pull", str(ref))
    return record


def image_event(ctx: Context, action: str, name: str) -> None:
    """Docker's image events carry the reference as the actor (and its name as an attribute)."""
    from isobox.model.events import EventType
    from isobox.service import events

    events.emit(ctx, EventType.IMAGE, action, name, {"name": name})


def ensure(ctx: Context, name: str, *, policy: PullPolicy = PullPolicy.MISSING, platform: str | None = None,
           insecure: bool = False, ca_cert: str | os.PathLike[str] | None = None,
           progress: ProgressFn | None = None) -> ImageRecord:
    """The image ``name`` names, from the store or the registry as ``policy`` says (Docker's ``--pull``).

    ``repo@digest`` is the store's when one of its images has that RepoDigest (it was pulled or pushed
    by it): the registry is not asked, as Docker resolves it locally. The built-in busybox is rebuilt
    rather than pulled.
    """
    if policy is not PullPolicy.ALWAYS:
        try:
            return ctx.images.resolve(name, platform=platform or "")
        except NotFoundError:
            if policy is PullPolicy.NEVER:
                raise
    if name in ("busybox", "busybox:latest", builtin.BUILTIN_NAME) and policy is not PullPolicy.ALWAYS:
        return install_builtin(ctx)
    try:
        return pull(ctx, name, platform=platform, insecure=insecure, ca_cert=ca_cert, progress=progress)
    except (ImagePullError, NotFoundError) as exc:
        from isobox.service import pulling

        raise pulling.failure(exc, name) from exc


def push(ctx: Context, source: str, target: str | None = None, *, insecure: bool = False,
         ca_cert: str | os.PathLike[str] | None = None, chunk_bytes: int = pushing.DEFAULT_CHUNK_BYTES,
         progress: PushProgressFn | None = None) -> str:
    """Push an image of the store to ``target`` (default: ``source`` as a name). Returns the manifest digest."""
    record = ctx.images.resolve(source)
    if target is None and record.id.removeprefix("sha256:").startswith(source.removeprefix("sha256:")):
        raise InvalidArgumentError(f"{source} is an image id: say where to push it (a registry/repository:tag)",
                                   op="push", id=record.id)
    ref = reference.parse(target or source)
    # Ask for pull access to the repositories we may mount from, in the same token (token.md, scope).
    sources = {repo for repos in pushing.mount_sources(ctx.images, ref).values() for repo in repos}
    scopes = tuple(sorted(f"repository:{repo}:pull" for repo in sources))
    options = registry_options(ctx, insecure=insecure, ca_cert=ca_cert)
    with RegistryClient(ref.registry, options, extra_scopes=scopes) as client:
        digest = pushing.push(ctx.images, client, record, ref, chunk_bytes=chunk_bytes, progress=progress)
    image_event(ctx, "push", str(ref))
    return digest


def login(ctx: Context, registry: str, username: str, password: str, *, insecure: bool = False,
          ca_cert: str | os.PathLike[str] | None = None) -> None:
    """Check the credentials against the registry (GET /v2/ answers 200), then store them (0600)."""
    if not username or not password:
        raise InvalidArgumentError("login needs a user name and a password", op="login", id=registry)
    host = normalize_registry(registry)
    creds = Credentials(username, password)
    options = registry_options(ctx, insecure=insecure, ca_cert=ca_cert)
    with RegistryClient(host, options, credentials=creds) as client:
        client.ping()
    credential_store(ctx).save(host, creds)


def logout(ctx: Context, registry: str) -> bool:
    """Forget isobox's credentials for ``registry``; returns whether there were any."""
    return credential_store(ctx).remove(registry)


# ---- the local store ---------------------------------------------------------------------------


def list_images(ctx: Context) -> list[ImageSummary]:
    digests = ctx.images.records.all_repo_digests()
    return [ImageSummary(record.id, tuple(names), record.size, record.created, record.platform,
                         tuple(str(d) for d in digests.get(record.id, [])))
            for record, names in ctx.images.list()]


def tag(ctx: Context, source: str, target: str) -> None:
    ctx.images.tag(source, target)
    image_event(ctx, "tag", target)


def remove(ctx: Context, name: str, *, force: bool = False) -> list[str]:
    removed = ctx.images.remove(name, force=force)
    for item in removed:  # "untagged NAME" and "deleted ID", as the store reports them
        kind, _, what = item.partition(" ")
        image_event(ctx, "delete" if kind == "deleted" else "untag", what)
    return removed


def inspect(ctx: Context, name: str) -> ImageDetails:
    record = ctx.images.resolve(name)
    return ImageDetails(record, tuple(ctx.images.names(record.id)), ctx.images.config_document(record),
                        tuple(str(d) for d in ctx.images.repo_digests(record.id)))


def history(ctx: Context, name: str) -> list[HistoryEntry]:
    """The config's history (image-spec config.md "history"), newest first, with each step's layer size."""
    record = ctx.images.resolve(name)
    steps = ctx.images.config_document(record).get("history") or []
    sizes = iter(layer.size for layer in record.layers)
    entries: list[HistoryEntry] = []
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        empty = bool(step.get("empty_layer", False))
        entries.append(HistoryEntry(str(step.get("created", "")), str(step.get("created_by", "")),
                                    str(step.get("comment", "")), empty, 0 if empty else next(sizes, 0)))
    return list(reversed(entries))


def prune(ctx: Context) -> PruneResult:
    """Remove unreferenced layers and blobs, and what writes that were killed left in lib/tmp and beside
    `save` targets (partial downloads no pull is continuing, half-written blobs of a load or commit)."""
    layers, blobs = ctx.images.gc()
    return PruneResult(layers, blobs, clear_stale_files(ctx))


def clear_stale_files(ctx: Context) -> int:
    """Files of killed pulls, loads, commits and saves (each locked while in use, so a running one keeps its)."""
    return ctx.images.blobs.clear_stale_tmp() + archive.clear_stale_saves(ctx.paths.tmp)


def save(ctx: Context, names: list[str], output: str | os.PathLike[str], *, fmt: str = "docker") -> None:
    """Write images to a tar: ``docker`` (docker save / docker load) or ``oci`` (an OCI image layout)."""
    if fmt not in archive.FORMATS:
        raise InvalidArgumentError(f"unknown archive format {fmt!r} (docker or oci)", op="save")
    archive.save(ctx.images, names, Path(output), fmt)
    for name in names:
        image_event(ctx, "save", name)


def load(ctx: Context, source: str | os.PathLike[str]) -> list[ImageRecord]:
    """Load every image of a docker-archive or OCI-layout tar (gzip-compressed or not)."""
    loaded = archive.load(ctx.images, Path(source))
    for record in loaded:
        image_event(ctx, "load", record.id)
    return loaded
