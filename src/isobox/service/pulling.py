"""What a user is told when an image is not in the store and fetching it fails: Docker's "Unable to find image
'X' locally", then why the pull failed in words ("pull access denied", "not found", "connection refused to
HOST"), never a socket library's errno text.

The registry client's errors keep their cause (httpx's, and below it the OSError of the socket); the reason is
read from that chain: a name that does not resolve, a refused or timed-out connection, a TLS failure, or the
registry's own answer (401/403, 404).
"""

from __future__ import annotations

import errno

from isobox.errors import ImagePullError, IsoboxError, NotFoundError
from isobox.images import reference
from isobox.service.context import Context

# images/builtin.BUILTIN_NAME and its short forms: not imported here, `run` starts without the builtin's code.
BUILTIN_NAMES = ("busybox", "busybox:latest", "docker.io/library/busybox:latest")


def familiar(image: str) -> str:
    """alpine → alpine:latest, as Docker names an image it looks for."""
    try:
        return reference.parse(image).familiar()
    except IsoboxError:
        return image


def is_local(ctx: Context, image: str) -> bool:
    """Whether the store has the image (or it is the built-in busybox, which is made, not pulled)."""
    if image in BUILTIN_NAMES:
        return True
    try:
        ctx.images.resolve(image)
    except (NotFoundError, IsoboxError):
        return False
    return True


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 16:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _registry(image: str) -> str:
    try:
        return reference.parse(image).registry
    except IsoboxError:
        return "the registry"


def reason(exc: IsoboxError, image: str) -> str:
    """Why pulling ``image`` failed, in a user's words (see the module's docstring)."""
    import socket  # here: `run` of an image in the store never needs them
    import ssl

    name, registry = familiar(image), _registry(image)
    repository = name.rsplit(":", 1)[0] if "@" not in name else name.split("@", 1)[0]
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return (f"cannot resolve the registry host {registry}: no DNS answer for it (is the name right, "
                    "and does this host reach a DNS server?)")
        if isinstance(cause, ssl.SSLError):
            return f"TLS with {registry} failed: {cause.reason or cause} (a registry without a trusted certificate: " \
                   "--insecure, or its CA with --ca-cert)"
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return f"connection refused to {registry}"
        if isinstance(cause, TimeoutError) or type(cause).__name__.endswith("Timeout"):
            return f"no answer from {registry} in time"
        if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"the registry {registry} is unreachable from this host ({cause.strerror})"
    text = exc.message
    if "access denied" in text:
        return f"pull access denied for {repository}: the repository does not exist or needs `isobox login {registry}`"
    if isinstance(exc, NotFoundError):
        return f"manifest for {name} not found: manifest unknown"
    if "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return f"cannot resolve the registry host {registry}: no DNS answer for it"
    if "Connection refused" in text:
        return f"connection refused to {registry}"
    return text


def failure(exc: IsoboxError, image: str) -> IsoboxError:
    """The same kind of error (NotFoundError stays one), worded by ``reason``, for `raise … from exc`."""
    message, op = reason(exc, image), f"pull {familiar(image)}"
    return NotFoundError(message, op=op) if isinstance(exc, NotFoundError) else ImagePullError(message, op=op)
