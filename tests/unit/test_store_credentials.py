"""Registry credentials (isobox's own store and Docker's config.json) and WWW-Authenticate parsing."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import httpx
import pytest

from isobox.errors import ImagePullError, InvalidArgumentError
from isobox.images.auth import Credentials, CredentialStore, RegistryAuth, normalize_registry, parse_challenge


def docker_config(tmp_path: Path, auths: dict[str, object]) -> Path:
    path = tmp_path / "docker-config.json"
    path.write_text(json.dumps({"auths": auths}))
    return path


def test_normalize_registry() -> None:
    assert normalize_registry("https://index.docker.io/v1/") == "docker.io"
    assert normalize_registry("registry-1.docker.io") == "docker.io"
    assert normalize_registry("http://Host:5000/some/path") == "host:5000"
    assert normalize_registry("ghcr.io") == "ghcr.io"


def test_save_get_remove_with_0600(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "lib/auth.json", docker_config=tmp_path / "absent.json")
    store.save("https://Reg.example:5000", Credentials("me", "pa:ss"))
    assert stat.S_IMODE((tmp_path / "lib/auth.json").stat().st_mode) == 0o600
    assert store.get("reg.example:5000") == Credentials("me", "pa:ss")
    assert store.remove("reg.example:5000") is True
    assert store.get("reg.example:5000") is None
    assert store.remove("reg.example:5000") is False
    with pytest.raises(InvalidArgumentError):
        store.save("x", Credentials("a:b", "c"))


def test_docker_config_is_a_read_only_fallback(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"hub-user:hub-pass").decode()
    config = docker_config(tmp_path, {"https://index.docker.io/v1/": {"auth": encoded},
                                      "broken.example": {"auth": "%%%"}, "other.example": {"identitytoken": "x"}})
    before = config.read_bytes()
    store = CredentialStore(tmp_path / "auth.json", docker_config=config)
    assert store.get("docker.io") == Credentials("hub-user", "hub-pass")
    assert store.get("broken.example") is None and store.get("other.example") is None
    store.save("docker.io", Credentials("mine", "pw"))
    assert store.get("docker.io") == Credentials("mine", "pw"), "isobox's own credentials win"
    assert config.read_bytes() == before


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
         "bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                    "scope": "repository:library/busybox:pull"}),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ('Bearer realm="https://x/t", scope="repository:a:pull,push", error="insufficient_scope"', "bearer",
         {"realm": "https://x/t", "scope": "repository:a:pull,push", "error": "insufficient_scope"}),
        ('Bearer realm=https://x/t,service=reg', "bearer", {"realm": "https://x/t", "service": "reg"}),
    ],
)
def test_parse_challenge(header: str, scheme: str, params: dict[str, str]) -> None:
    assert parse_challenge(header) == (scheme, params)


def _client(handler: object, creds: Credentials | None) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), auth=RegistryAuth("reg", creds))  # type: ignore[arg-type]


def test_bearer_flow_fetches_and_reuses_a_token() -> None:
    """A fake transport for the flow's logic; the real registry + token issuer run in the integration tests."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "T1"})
        if request.headers.get("Authorization") == "Bearer T1":
            return httpx.Response(200, text="ok")
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="http://auth/token",service="s",scope="repository:a:pull"'})

    with _client(handler, Credentials("u", "p")) as client:
        assert client.get("http://reg/v2/a/manifests/1").text == "ok"
        assert client.get("http://reg/v2/a/blobs/x").text == "ok"
    token_requests = [r for r in seen if r.url.path == "/token"]
    assert len(token_requests) == 1
    assert token_requests[0].url.params.get_list("scope") == ["repository:a:pull"]
    assert token_requests[0].url.params["account"] == "u"
    assert token_requests[0].headers["Authorization"] == Credentials("u", "p").basic_header()
    assert len(seen) == 4  # 401, token, retry, and the second request straight with the cached token


def test_token_service_refusal_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(401)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="http://auth/token"'})

    client = _client(handler, Credentials("u", "bad"))
    with client, pytest.raises(ImagePullError, match="refused access as 'u'"):
        client.get("http://reg/v2/")


def test_basic_challenge_without_credentials_passes_the_401_through() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization"):
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    with _client(handler, None) as client:
        assert client.get("http://reg/v2/").status_code == 401
    with _client(handler, Credentials("u", "p")) as client:
        assert client.get("http://reg/v2/").status_code == 200
