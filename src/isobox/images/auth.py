"""Registry credentials and the two authentication schemes registries use.

Credentials come from isobox's own store (``isobox login``: LIB/auth.json, mode 0600) and then, read-only,
from the files Podman and Docker users already have, in the order containers-auth.json(5) searches them:
``$REGISTRY_AUTH_FILE`` or ``${XDG_RUNTIME_DIR}/containers/auth.json`` (``/run/containers/<uid>/auth.json``
without XDG_RUNTIME_DIR), ``${XDG_CONFIG_HOME:-~/.config}/containers/auth.json``, and Docker's
``$DOCKER_CONFIG/config.json`` (default ~/.docker). The first that knows the registry wins. In each file a
credential helper named for the registry (``credHelpers``), else the default one (``credsStore``, Docker's),
is asked first, by the protocol of docker-credential-helpers: ``docker-credential-<name> get`` with the
server address on stdin, ``{"Username", "Secret"}`` on stdout. ``auths.<registry>.auth`` (base64
"user:password") is the fallback. A helper that is missing or fails is a warning, not an error: a public
image still pulls, and a private one is refused as "access denied". Identity tokens (a helper's
``<token>`` user) and per-repository keys (``quay.io/team``) are not supported.

`RegistryAuth` is an httpx.Auth that answers a 401 challenge (RFC 7235 WWW-Authenticate):

- ``Basic``: resend with the credentials (RFC 7617);
- ``Bearer realm=…,service=…,scope=…``: ask the realm for a token, anonymously or with the credentials,
  then resend with ``Authorization: Bearer`` (the Docker token protocol, distribution docs/spec/auth/token.md,
  which Docker Hub, GHCR and Quay implement). Tokens are cached per scope set and reused until a 401.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import httpx

from isobox.errors import ImagePullError, InvalidArgumentError

log = logging.getLogger(__name__)

DOCKER_HUB = "docker.io"
# The key Docker uses for Docker Hub in config.json, and the hosts that mean the same registry.
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "docker.io")
_CHALLENGE_PARAM = re.compile(r'\s*([a-zA-Z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


def normalize_registry(text: str) -> str:
    """'https://index.docker.io/v1/' → 'docker.io'; 'http://host:5000/x' → 'host:5000'."""
    host = re.sub(r"^[a-z]+://", "", text.strip()).split("/", 1)[0].lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _decode_auth(entry: object) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("username") and entry.get("password"):
        return Credentials(str(entry["username"]), str(entry["password"]))
    encoded = entry.get("auth")
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        user, sep, password = base64.b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return Credentials(user, password) if sep else None


def _read_document(path: Path) -> dict[str, object]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable credentials file %s: %s", path, exc)
        return {}
    return document if isinstance(document, dict) else {}


def _read_auths(document: dict[str, object]) -> dict[str, Credentials]:
    auths = document.get("auths")
    found: dict[str, Credentials] = {}
    for key, entry in (auths.items() if isinstance(auths, dict) else ()):
        creds = _decode_auth(entry)
        if creds is not None:
            found[normalize_registry(key)] = creds
    return found


def _helper_for(document: dict[str, object], host: str) -> str | None:
    helpers = document.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if normalize_registry(key) == host and isinstance(name, str) and name:
                return name
    store = document.get("credsStore")
    return store if isinstance(store, str) and store else None


HELPER_TIMEOUT_S = 30.0


def helper_server_address(host: str) -> str:
    """What Docker hands a credential helper for a registry (Docker Hub keeps its historical address)."""
    return "https://index.docker.io/v1/" if host == DOCKER_HUB else host


def run_helper(name: str, host: str) -> Credentials | None:
    """`docker-credential-<name> get` for ``host``; None (and a warning, unless it simply has nothing) on failure."""
    program = f"docker-credential-{name}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):  # a name, looked up on PATH, never a path
        log.warning("ignoring the credential helper %r configured for %s: not a helper name", name, host)
        return None
    # Not isobox.command.run: a helper's failure is a warning, never an error, and "not found" is a normal
    # answer that the protocol gives on stdout with a non-zero status.
    try:
        done = subprocess.run(
            [program, "get"], input=helper_server_address(host), capture_output=True, text=True,
            timeout=HELPER_TIMEOUT_S, check=False,
        )
    except FileNotFoundError:
        log.warning("credential helper %s is not installed: no credentials from it for %s", program, host)
        return None
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("credential helper %s failed for %s: %s", program, host, exc)
        return None
    if done.returncode != 0:
        message = (done.stdout.strip() or done.stderr.strip() or f"exit status {done.returncode}")[:300]
        if "credentials not found" not in message.lower():
            log.warning("credential helper %s failed for %s: %s", program, host, message)
        return None
    try:
        answer = json.loads(done.stdout)
        user, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("credential helper %s answered %s with something other than its JSON: %s", program, host, exc)
        return None
    if user == "<token>":
        log.warning("credential helper %s holds an identity token for %s, which isobox does not use", program, host)
        return None
    return Credentials(user, secret) if user and secret else None


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def user_credential_files() -> list[Path]:
    """Podman's and Docker's credentials files, in the order containers-auth.json(5) reads them."""
    override = os.environ.get("REGISTRY_AUTH_FILE")
    if override:
        primary = Path(override)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        primary = Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    else:
        primary = Path(f"/run/containers/{os.geteuid()}/auth.json")
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [primary, config_home / "containers" / "auth.json", docker_config_path()]


class CredentialStore:
    """isobox's own credentials file, then (read-only) the user's Podman and Docker files and their helpers."""

    def __init__(
        self,
        path: Path,
        fallbacks: list[Path] | None = None,
        helper: Callable[[str, str], Credentials | None] = run_helper,
    ) -> None:
        self.path = path
        self.fallbacks = fallbacks if fallbacks is not None else user_credential_files()
        self._helper = helper

    def get(self, registry: str) -> Credentials | None:
        host = normalize_registry(registry)
        own = _read_auths(_read_document(self.path)).get(host)
        if own is not None:
            return own
        for path in self.fallbacks:
            document = _read_document(path)
            helper = _helper_for(document, host)
            creds = self._helper(helper, host) if helper else None
            if creds is None:
                creds = _read_auths(document).get(host)
            if creds is not None:
                return creds
        return None

    def save(self, registry: str, creds: Credentials) -> None:
        if ":" in creds.username:
            raise InvalidArgumentError("a user name may not contain ':'", op="login")
        document = self._load()
        encoded = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        document.setdefault("auths", {})[normalize_registry(registry)] = {"auth": encoded}
        self._write(document)

    def remove(self, registry: str) -> bool:
        document = self._load()
        removed = document.get("auths", {}).pop(normalize_registry(registry), None) is not None
        if removed:
            self._write(document)
        return removed

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            value = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"auths": {}}
        except ValueError as exc:
            raise InvalidArgumentError(f"credentials file is corrupt: {exc}", op="read credentials",
                                       path=str(self.path)) from exc
        return value if isinstance(value, dict) else {"auths": {}}

    def _write(self, document: dict[str, dict[str, object]]) -> None:
        # Created 0600 from the start (never world-readable, not even briefly), then renamed into place.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(document, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="https://a/token",service="reg",scope="repository:x:pull"' → ('bearer', {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for match in _CHALLENGE_PARAM.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
    return scheme.lower(), params


class RegistryAuth(httpx.Auth):
    """Answers 401 challenges with Basic credentials or a Bearer token; thread-safe token cache."""

    def __init__(
        self, registry: str, credentials: Credentials | None, extra_scopes: tuple[str, ...] = ()
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self.extra_scopes = extra_scopes
        self._header: str | None = None
        self._lock = threading.Lock()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            cached = self._header
        if cached and "Authorization" not in request.headers:
            request.headers["Authorization"] = cached
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            if self.credentials is None:
                return  # the caller reports the 401: "authentication required, run isobox login"
            header = self.credentials.basic_header()
        elif scheme == "bearer" and params.get("realm"):
            token_response = yield self._token_request(params)
            token_response.read()
            header = f"Bearer {self._token_from(token_response)}"
        else:
            return
        with self._lock:
            self._header = header
        request.headers["Authorization"] = header
        yield request

    def _token_request(self, params: dict[str, str]) -> httpx.Request:
        # token.md "Requesting a Token": scope may repeat; account names the user when authenticating.
        query: list[tuple[str, str | int | float | bool | None]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        scopes = [s for s in (params.get("scope", "").split(" ")) if s]
        scopes += [s for s in self.extra_scopes if s not in scopes]
        query += [("scope", s) for s in scopes]
        headers = {}
        if self.credentials is not None:
            query.append(("account", self.credentials.username))
            headers["Authorization"] = self.credentials.basic_header()
        return httpx.Request("GET", params["realm"], params=query, headers=headers)

    def _token_from(self, response: httpx.Response) -> str:
        if response.status_code in (401, 403):
            who = f"as {self.credentials.username!r}" if self.credentials else "anonymously"
            raise ImagePullError(
                f"the token service of {self.registry} refused access {who} (HTTP {response.status_code})",
                op="authenticate",
                id=self.registry,
            )
        try:
            document = response.json()
            token = document.get("token") or document.get("access_token")
        except (ValueError, AttributeError) as exc:
            raise ImagePullError(f"the token service of {self.registry} sent no token", op="authenticate",
                                 id=self.registry) from exc
        if response.status_code != 200 or not isinstance(token, str) or not token:
            raise ImagePullError(
                f"the token service of {self.registry} answered HTTP {response.status_code} without a token",
                op="authenticate",
                id=self.registry,
            )
        return token
