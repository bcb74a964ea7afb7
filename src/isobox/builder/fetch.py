"""``ADD https://…``: downloading a file for a build, checked against ``--checksum`` when given.

TLS is verified against the system's CAs, or ISOBOX_CA (a CA bundle, as for registries) when it is set.
The file is named after the last element of the URL's path; its modification time is the response's
Last-Modified, when it has one (the Dockerfile reference, "ADD", "Adding files from a URL").
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import posixpath
import ssl
import tempfile
import urllib.parse
from pathlib import Path

from isobox.builder.copy import Download
from isobox.errors import ImagePullError, InvalidArgumentError

__all__ = ["MAX_DOWNLOAD_BYTES", "fetch"]

MAX_DOWNLOAD_BYTES = 8 * 1024**3
TIMEOUT_S = 120.0


def _verify() -> ssl.SSLContext | bool:
    bundle = os.environ.get("ISOBOX_CA")
    return ssl.create_default_context(cafile=bundle) if bundle else True


def _name(url: str) -> str:
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    name = posixpath.basename(path)
    if not name or name in (".", ".."):
        raise InvalidArgumentError(f"cannot tell a file name from the URL {url!r}: name the file at its end",
                                   op="ADD")
    return name


def _mtime(header: str | None) -> int | None:
    if not header:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(header).timestamp())
    except (TypeError, ValueError):
        return None


def check_checksum(text: str) -> str:
    algorithm, sep, value = text.partition(":")
    if not sep or algorithm not in ("sha256", "sha384", "sha512") or not value or any(
            ch not in "0123456789abcdef" for ch in value):
        raise InvalidArgumentError(f"--checksum={text!r} is not a digest (sha256:<hex>)", op="ADD")
    return text


def fetch(url: str, *, checksum: str, scratch: Path, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Download:
    """Download ``url`` into ``scratch``; raises ImagePullError for HTTP failures and a checksum mismatch."""
    import httpx  # an HTTP stack only for builds that download

    name = _name(url)
    algorithm = check_checksum(checksum).split(":", 1)[0] if checksum else "sha256"
    hasher = hashlib.new(algorithm)
    fd, temporary = tempfile.mkstemp(dir=scratch, prefix="download-")
    try:
        with (os.fdopen(fd, "wb") as out,
              httpx.Client(verify=_verify(), follow_redirects=True, timeout=TIMEOUT_S) as client,
              client.stream("GET", url) as response):
            if response.status_code != 200:
                raise ImagePullError(f"GET {url} answered {response.status_code} {response.reason_phrase}", op="ADD")
            size = 0
            for chunk in response.iter_bytes(1024 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise ImagePullError(f"{url} is larger than {max_bytes} bytes", op="ADD")
                hasher.update(chunk)
                out.write(chunk)
            mtime = _mtime(response.headers.get("last-modified"))
    except httpx.HTTPError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ImagePullError(f"cannot download {url}: {exc}", op="ADD") from exc
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    digest = f"{algorithm}:{hasher.hexdigest()}"
    if checksum and digest != checksum:
        Path(temporary).unlink(missing_ok=True)
        raise ImagePullError(f"{url} has digest {digest}, but --checksum says {checksum}", op="ADD")
    return Download(url, Path(temporary), name, digest, mtime)
