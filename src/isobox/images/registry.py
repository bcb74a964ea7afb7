"""A client for the OCI distribution API (distribution-spec spec.md), over one httpx.Client per registry.

Only what pull and push need: manifests (GET, PUT) with a size bound, blobs (GET with Range for resuming,
HEAD), and uploads (cross-repository mount, monolithic PUT, chunked PATCH). Every httpx error and every
unexpected HTTP status is translated here, once, into an isobox error that names the registry, the
repository and the object.

Transport: HTTPS with the system CA store, plus an optional CA file (``--ca-cert`` / ISOBOX_CA) and the
per-registry directories Docker and Podman use (``certs.d/HOST:PORT/*.crt``, ``client.cert``/``client.key``).
``insecure`` (asked for explicitly) is Docker's insecure registry: HTTPS without verifying the certificate
if the registry speaks TLS, else plain HTTP (one probe of /v2/ decides). Redirects are followed (blob
storage often lives elsewhere); httpx drops the Authorization header when a redirect leaves the
registry's origin.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from isobox.errors import DigestMismatchError, ImagePullError, ManifestError, NotFoundError
from isobox.images.auth import Credentials, CredentialStore, RegistryAuth
from isobox.images.store import DOCKER_LIST, DOCKER_MANIFEST, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST

log = logging.getLogger(__name__)

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
CERTS_DIRS = (Path("/etc/isobox/certs.d"), Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))
STREAM_CHUNK = 1 << 20


class BlobReadError(ImagePullError):
    """The connection broke while a blob was streaming: worth a retry that resumes with Range."""


@dataclass(frozen=True)
class RegistryOptions:
    insecure: bool = False                # HTTPS without verification, or plain HTTP where there is no TLS
    ca_cert: Path | None = None           # an extra CA bundle trusted for every registry
    certs_dirs: tuple[Path, ...] = CERTS_DIRS
    credentials: CredentialStore | None = None
    timeout_s: float = 60.0
    max_connections: int = 8


@dataclass(frozen=True)
class Manifest:
    data: bytes
    media_type: str
    digest: str


@dataclass
class UploadSession:
    """An open blob upload (spec.md "Pushing blobs"): where to send the next chunk, and how much was sent."""

    location: str
    offset: int = 0


def endpoint(registry: str) -> str:
    """The host that serves a registry's API (Docker Hub's API does not live at docker.io)."""
    return "registry-1.docker.io" if registry == "docker.io" else registry


def ssl_context(registry: str, options: RegistryOptions) -> ssl.SSLContext:
    context = ssl.create_default_context()  # the system store (Debian: /etc/ssl/certs), not certifi
    if options.ca_cert is not None:
        context.load_verify_locations(cafile=str(options.ca_cert))
    for base in options.certs_dirs:
        directory = base / registry
        if not directory.is_dir():
            continue
        for crt in sorted(directory.glob("*.crt")):
            context.load_verify_locations(cafile=str(crt))
        cert, key = directory / "client.cert", directory / "client.key"
        if cert.is_file() and key.is_file():
            context.load_cert_chain(str(cert), str(key))
    return context


def _error_detail(response: httpx.Response) -> str:
    """The registry's own explanation (spec.md "Error Codes"), if the body carries one."""
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
    except (ValueError, AttributeError, httpx.ResponseNotRead):
        return ""


class RegistryClient:
    """Talks to one registry host; repository names are per call, so push can mount across repositories."""

    def __init__(
        self,
        registry: str,
        options: RegistryOptions | None = None,
        *,
        extra_scopes: tuple[str, ...] = (),
        credentials: Credentials | None = None,
    ) -> None:
        self.registry = registry
        self.options = options or RegistryOptions()
        creds = credentials
        if creds is None and self.options.credentials is not None:
            creds = self.options.credentials.get(registry)
        self._has_credentials = creds is not None
        self.base = f"https://{endpoint(registry)}"
        try:
            verify: ssl.SSLContext | bool = False if self.options.insecure else ssl_context(registry, self.options)
        except (OSError, ssl.SSLError) as exc:
            raise ImagePullError(f"cannot load TLS certificates for {registry}: {exc}", op="connect",
                                 id=registry) from exc
        limits = httpx.Limits(max_connections=self.options.max_connections,
                              max_keepalive_connections=self.options.max_connections)
        self.http = httpx.Client(
            auth=RegistryAuth(registry, creds, extra_scopes),
            verify=verify,
            follow_redirects=True,
            timeout=httpx.Timeout(self.options.timeout_s, connect=min(self.options.timeout_s, 30.0)),
            limits=limits,
            headers={"User-Agent": "isobox"},
        )
        if self.options.insecure and not self._speaks_tls():
            self.base = f"http://{endpoint(registry)}"

    def _speaks_tls(self) -> bool:
        """Whether the registry answers HTTPS at all (any HTTP status counts; auth is not attempted)."""
        try:
            self.http.get(f"{self.base}/v2/", auth=None, timeout=min(self.options.timeout_s, 10.0))
        except httpx.TransportError:  # no TLS there (or nothing at all: plain HTTP then says so)
            return False
        return True

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # ---- plumbing ------------------------------------------------------------------------------

    def url(self, repository: str, kind: str, ref: str = "") -> str:
        return f"{self.base}/v2/{repository}/{kind}/{ref}"

    def _fail(self, response: httpx.Response, op: str, what: str) -> ImagePullError | NotFoundError:
        detail = _error_detail(response)
        text = f"{what}: HTTP {response.status_code}" + (f" ({detail})" if detail else "")
        if response.status_code in (401, 403):
            hint = "" if self._has_credentials else f"; log in with `isobox login {self.registry}`"
            return ImagePullError(f"{text}: access denied{hint}", op=op, id=self.registry)
        if response.status_code == 404:
            return NotFoundError(f"{text}: not found", op=op, id=self.registry)
        return ImagePullError(text, op=op, id=self.registry)

    def _request(self, method: str, url: str, op: str, **kwargs: object) -> httpx.Response:
        try:
            return self.http.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise ImagePullError(f"{method} {url} failed: {exc}", op=op, id=self.registry) from exc
        except httpx.StreamError as exc:
            raise ImagePullError(f"{method} {url} could not be resent: {exc}", op=op, id=self.registry) from exc

    def ping(self) -> None:
        """GET /v2/ (spec.md "Determining support"), authenticated if credentials are known."""
        response = self._request("GET", f"{self.base}/v2/", "ping registry")
        if response.status_code != 200:
            raise self._fail(response, "ping registry", f"registry {self.registry}")

    # ---- manifests -----------------------------------------------------------------------------

    def get_manifest(self, repository: str, target: str, *, max_bytes: int = MAX_MANIFEST_BYTES) -> Manifest:
        """A manifest or index by tag or digest, bounded in size and verified against its digest."""
        what = f"manifest {repository}:{target}" if ":" not in target else f"manifest {repository}@{target}"
        try:
            with self.http.stream("GET", self.url(repository, "manifests", target),
                                  headers={"Accept": MANIFEST_ACCEPT}) as response:
                if response.status_code != 200:
                    response.read()
                    raise self._fail(response, "get manifest", what)
                declared = int(response.headers.get("Content-Length") or 0)
                if declared > max_bytes:
                    raise ManifestError(f"{what} is {declared} bytes, more than the limit of {max_bytes}",
                                        op="get manifest", id=self.registry)
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise ManifestError(f"{what} is more than the limit of {max_bytes} bytes",
                                            op="get manifest", id=self.registry)
                media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
                header_digest = response.headers.get("Docker-Content-Digest", "")
        except httpx.HTTPError as exc:
            raise ImagePullError(f"fetching {what} failed: {exc}", op="get manifest", id=self.registry) from exc
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        expected = target if target.startswith("sha256:") else header_digest
        if expected.startswith("sha256:") and expected != digest:
            raise DigestMismatchError(f"{what} has digest {digest}, expected {expected}", op="get manifest",
                                      id=self.registry)
        return Manifest(bytes(data), media_type, digest)

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> str:
        response = self._request("PUT", self.url(repository, "manifests", ref), "push manifest",
                                 content=data, headers={"Content-Type": media_type})
        if response.status_code not in (200, 201):
            raise self._fail(response, "push manifest", f"manifest {repository}:{ref}")
        return str(response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(data).hexdigest())

    # ---- blobs ---------------------------------------------------------------------------------

    @contextmanager
    def blob(self, repository: str, digest: str, offset: int = 0) -> Iterator[tuple[int, Iterator[bytes]]]:
        """Stream a blob from ``offset`` (HTTP Range, RFC 9110 §14); yields (actual start, chunks).

        A server that ignores Range answers 200 with the whole blob: the start is then 0.
        """
        what = f"blob {digest} of {repository}"
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with self.http.stream("GET", self.url(repository, "blobs", digest), headers=headers) as response:
                if response.status_code == 416 and offset:
                    yield offset, iter(())  # the partial copy is already complete: let the digest judge it
                    return
                if response.status_code not in (200, 206):
                    response.read()
                    raise self._fail(response, "get blob", what)
                start = offset if response.status_code == 206 else 0
                yield start, self._chunks(response, what)
        except httpx.HTTPError as exc:
            raise BlobReadError(f"fetching {what} failed: {exc}", op="get blob", id=self.registry) from exc

    def _chunks(self, response: httpx.Response, what: str) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(STREAM_CHUNK)
        except httpx.HTTPError as exc:
            raise BlobReadError(f"reading {what} failed: {exc}", op="get blob", id=self.registry) from exc

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self._request("HEAD", self.url(repository, "blobs", digest), "check blob")
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._fail(response, "check blob", f"blob {digest} of {repository}")

    def start_upload(self, repository: str, *, mount: str = "", source: str = "") -> UploadSession | None:
        """POST an upload session; with ``mount``/``source`` try a cross-repository mount first.

        spec.md "Mounting a blob from another repository": 201 means mounted (returns None); a registry
        that cannot mount answers 202 and a fresh upload session, which we then use.
        """
        params = {"mount": mount, "from": source} if mount and source else {}
        response = self._request("POST", self.url(repository, "blobs", "uploads/"), "start upload", params=params)
        if response.status_code == 201 and params:
            return None
        if response.status_code != 202 or "Location" not in response.headers:
            raise self._fail(response, "start upload", f"upload to {repository}")
        return UploadSession(str(response.url.join(response.headers["Location"])))

    def upload(self, repository: str, upload: UploadSession, path: Path, digest: str, size: int, *,
               chunk_bytes: int = 0) -> None:
        """Send a blob: one PUT if ``chunk_bytes`` is 0 or the blob fits, else PATCH chunks then PUT."""
        with open(path, "rb") as source:
            if chunk_bytes and size > chunk_bytes:
                while upload.offset < size:
                    data = source.read(chunk_bytes)
                    end = upload.offset + len(data) - 1
                    response = self._request(
                        "PATCH", upload.location, "upload blob", content=data,
                        headers={"Content-Type": "application/octet-stream", "Content-Range": f"{upload.offset}-{end}"},
                    )
                    if response.status_code != 202:
                        raise self._fail(response, "upload blob", f"chunk of {digest} to {repository}")
                    upload.location = str(response.url.join(response.headers.get("Location", upload.location)))
                    upload.offset = end + 1
                body: Iterator[bytes] = iter(())
                length = 0
            else:
                body = iter(lambda: source.read(STREAM_CHUNK), b"")
                length = size
            url = httpx.URL(upload.location).copy_merge_params({"digest": digest})
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
            response = self._request("PUT", str(url), "upload blob", content=body, headers=headers)
        if response.status_code not in (201, 204):
            raise self._fail(response, "upload blob", f"blob {digest} to {repository}")
