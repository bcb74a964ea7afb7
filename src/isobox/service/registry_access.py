"""Registry operations with credentials given per call (Docker's X-Registry-Auth header and /auth), which
the daemon uses for one request and never stores; `isobox login` stores them instead (service/images.py).

Insecure registries follow dockerd's rule: a registry on a loopback address is spoken to without TLS
verification (plain HTTP where it has no TLS), and so is every registry the server was started with
``--insecure-registry`` for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from isobox.images import builtin, reference
from isobox.images import platform as platforms
from isobox.images import pull as pulling
from isobox.images import push as pushing
from isobox.images.auth import Credentials, normalize_registry
from isobox.images.registry import RegistryClient
from isobox.images.store import ImageRecord
from isobox.service import images
from isobox.service.context import Context

BUILTIN_NAMES = ("busybox", "busybox:latest", builtin.BUILTIN_NAME)


def insecure_registry(registry: str, configured: Iterable[str] = ()) -> bool:
    host = registry
    if host.startswith("["):
        host = host[1:host.find("]")]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host == "localhost":
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    return normalize_registry(registry) in {normalize_registry(r) for r in configured}


def pull(ctx: Context, name: str, *, credentials: Credentials | None = None, platform: str | None = None,
         insecure_registries: Iterable[str] = (), progress: pulling.ProgressFn | None = None) -> ImageRecord:
    """Pull ``name``; busybox is isobox's built-in image, made locally as `isobox run busybox` does."""
    if name in BUILTIN_NAMES:
        return images.install_builtin(ctx)
    ref = reference.parse(name)
    wanted = platforms.parse(platform) if platform else None
    options = images.registry_options(ctx, insecure=insecure_registry(ref.registry, insecure_registries))
    with RegistryClient(ref.registry, options, credentials=credentials) as client:
        record = pulling.pull(ctx.images, client, ref, wanted=wanted, progress=progress)
    images.image_event(ctx, "pull", str(ref))
    return record


def push(ctx: Context, name: str, *, credentials: Credentials | None = None, insecure_registries: Iterable[str] = (),
         progress: pushing.ProgressFn | None = None) -> str:
    """Push an image of the store under its own name; returns the manifest digest."""
    record = ctx.images.resolve(name)
    ref = reference.parse(name)
    sources = {repo for repos in pushing.mount_sources(ctx.images, ref).values() for repo in repos}
    scopes = tuple(sorted(f"repository:{repo}:pull" for repo in sources))
    options = images.registry_options(ctx, insecure=insecure_registry(ref.registry, insecure_registries))
    with RegistryClient(ref.registry, options, extra_scopes=scopes, credentials=credentials) as client:
        digest = pushing.push(ctx.images, client, record, ref, progress=progress)
    images.image_event(ctx, "push", str(ref))
    return digest


def check_credentials(ctx: Context, registry: str, credentials: Credentials, *,
                      insecure_registries: Iterable[str] = ()) -> None:
    """GET /v2/ with the credentials answers 200 (as `isobox login` checks), without storing them."""
    host = normalize_registry(registry)
    options = images.registry_options(ctx, insecure=insecure_registry(host, insecure_registries))
    with RegistryClient(host, options, credentials=credentials) as client:
        client.ping()

