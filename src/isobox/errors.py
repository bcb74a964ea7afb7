"""One error tree for all of isobox.

    IsoboxError                      every error isobox raises on purpose
    ├── InvalidArgumentError         the caller asked for something malformed (bad flag, bad reference)
    ├── NotFoundError                an image, workload, network, volume or snapshot does not exist
    ├── ConflictError                a name or resource is already taken / still in use
    ├── InvalidStateError            the operation is not allowed in the workload's current status
    │   └── UnsupportedError         the workload's driver lacks a capability (a typed refusal)
    ├── HostError                    the host lacks something isobox needs (runtime, kernel, root, QEMU)
    ├── StateError                   isobox's own state is damaged (database, records): `isobox system check`
    ├── PolicyError                  the isolation policy refuses the workload, or the kind asked for
    ├── ImageError                   anything about image content
    │   ├── ImagePullError           talking to a registry failed (network, auth, HTTP status)
    │   ├── ManifestError            a manifest/index/config is malformed, too large or of unknown type
    │   ├── DigestMismatchError      a blob's content does not match its digest (or is truncated)
    │   └── UnsafeLayerError         a layer tries to escape its directory or break a policy
    └── WorkloadError                starting or driving a workload failed (runtime, QEMU, guest)
        └── CommandError             its command could not be run: not found (exit 127), not executable (126)

Every error carries the operation that failed (``op``), and where known the path or id it failed on;
the lower-level cause is kept as ``__cause__`` (``raise ... from exc``).
"""

from __future__ import annotations


class IsoboxError(Exception):
    """Base of every error isobox raises on purpose."""

    def __init__(self, message: str, *, op: str = "", path: str = "", id: str = "") -> None:
        self.message = message
        self.op = op
        self.path = path
        self.id = id
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = " ".join(part for part in (self.id, self.path) if part)
        prefix = f"{self.op}: " if self.op else ""
        suffix = f" ({where})" if where and where not in self.message else ""
        return f"{prefix}{self.message}{suffix}"


class InvalidArgumentError(IsoboxError):
    """The caller asked for something malformed."""


class NotFoundError(IsoboxError):
    """An image, workload, network, volume or snapshot does not exist."""


class ConflictError(IsoboxError):
    """A name or resource is already taken, or still in use."""


class InvalidStateError(IsoboxError):
    """The operation is not allowed in the workload's current status."""


class HostError(IsoboxError):
    """The host lacks something isobox needs."""


class UnsupportedError(InvalidStateError):
    """The workload's driver lacks the capability the operation needs (a VM booted from a disk image has no
    guest agent, a container has no memory snapshot …). A subclass of InvalidStateError: for a client it is
    "not possible for this workload", never a crash."""


class StateError(IsoboxError):
    """isobox's own state (the database, a record) is damaged or missing while content exists beside it."""


class PolicyError(IsoboxError):
    """The isolation policy refuses the workload, or the kind (--container) it was asked to run as."""


class ImageError(IsoboxError):
    """Anything about image content."""


class ImagePullError(ImageError):
    """Talking to a registry failed."""


class ManifestError(ImageError):
    """A manifest, index or config is malformed, too large or of an unknown media type."""


class DigestMismatchError(ImageError):
    """A blob's content does not match its digest, or is truncated."""


class UnsafeLayerError(ImageError):
    """A layer tries to write outside its directory or carries something the policy forbids."""


class WorkloadError(IsoboxError):
    """Starting or driving a workload failed."""


class CommandError(WorkloadError):
    """The workload's command could not be run: not found (``exit_code`` 127) or not executable (126), the
    codes a shell and Docker report."""

    def __init__(self, message: str, *, exit_code: int, op: str = "", path: str = "", id: str = "") -> None:
        super().__init__(message, op=op, path=path, id=id)
        self.exit_code = exit_code


__all__ = [
    "CommandError",
    "ConflictError",
    "DigestMismatchError",
    "HostError",
    "ImageError",
    "ImagePullError",
    "InvalidArgumentError",
    "InvalidStateError",
    "IsoboxError",
    "ManifestError",
    "NotFoundError",
    "PolicyError",
    "StateError",
    "UnsafeLayerError",
    "UnsupportedError",
    "WorkloadError",
]
