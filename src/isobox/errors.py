"""One error tree for all of isobox.

    IsoboxError                      every error isobox raises on purpose
    ├── InvalidArgumentError         the caller asked for something malformed (bad flag, bad reference)
    ├── NotFoundError                an image, workload, network, volume or snapshot does not exist
    ├── ConflictError                a name or resource is already taken / still in use
    ├── InvalidStateError            the operation is not allowed in the workload's current status
    ├── HostError                    the host lacks something isobox needs (runtime, kernel, root, QEMU)
    ├── PolicyError                  the isolation policy refuses the workload, or the kind asked for
    ├── ImageError                   anything about image content
    │   ├── ImagePullError           talking to a registry failed (network, auth, HTTP status)
    │   ├── ManifestError            a manifest/index/config is malformed, too large or of unknown type
    │   ├── DigestMismatchError      a blob's content does not match its digest (or is truncated)
    │   └── UnsafeLayerError         a layer tries to escape its directory or break a policy
    └── WorkloadError                starting or driving a workload failed (runtime, QEMU, guest)

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


__all__ = [
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
    "UnsafeLayerError",
    "WorkloadError",
]
