"""One table from isobox's error tree to HTTP statuses, and Docker's error body ``{"message": …}``.

Docker's daemon answers 404 for what does not exist, 409 for a name in use or a state that forbids the
operation, 400 for a bad parameter, 304 (no body) for starting a running container or stopping a stopped
one, and 500 for everything else. Handlers raise isobox's own errors; only what has no isobox error
(an unimplemented endpoint, a 304) is raised as an ApiError here.
"""

from __future__ import annotations

import json

from isobox.errors import (
    ConflictError,
    InvalidArgumentError,
    InvalidStateError,
    IsoboxError,
    ManifestError,
    NotFoundError,
    PolicyError,
)

# First match wins: subclasses before their bases.
STATUS: tuple[tuple[type[IsoboxError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidStateError, 409),
    (InvalidArgumentError, 400),
    (ManifestError, 400),
    (PolicyError, 403),  # the isolation policy refuses: as an authorization plugin's denial
)


class ApiError(Exception):
    """An answer the isobox error tree has no class for (501 not implemented, 405, 304 not modified)."""

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class NotModified(ApiError):
    """Docker's 304: the container is already in the state asked for (start, stop)."""

    def __init__(self) -> None:
        super().__init__(304)


def not_implemented(what: str, why: str = "") -> ApiError:
    return ApiError(501, f"{what} is not implemented by isobox's Docker API yet" + (f": {why}" if why else ""))


def status_for(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def message_for(exc: BaseException, operation: str) -> str:
    """The text of the error body. A 500 names the operation, so a log line or a client's message says
    where it broke even when the error itself does not."""
    if isinstance(exc, ApiError):
        return exc.message
    text = str(exc) if isinstance(exc, IsoboxError) else f"{type(exc).__name__}: {exc}"
    if status_for(exc) == 500 and not text.startswith(operation):
        return f"{operation}: {text}"
    return text


def body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()
