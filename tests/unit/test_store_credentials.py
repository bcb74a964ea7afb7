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
    store = CredentialStore(tmp_path / "lib/auth.json", fallbacks=[tmp_path / "absent.json"])
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
    store = CredentialStore(tmp_path / "auth.json", fallbacks=[config])
    assert store.get("docker.io") == Credentials("hub-user", "hub-pass")
    assert store.get("broken.example") is None and store.get("other.example") is None
    store.save("docker.io", Credentials("mine", "pw"))
    assert store.get("docker.io") == Credentials("mine", "pw"), "isobox's own credentials win"
    assert config.read_bytes() == before


def test_helpers_then_auths_in_each_file_and_the_first_file_that_knows_wins(tmp_path: Path) -> None:
    asked: list[tuple[str, str]] = []
    answers = {("pass", "ghcr.io"): Credentials("gh", "token1"), ("desktop", "docker.io"): Credentials("hub", "pw")}

    def helper(name: str, host: str) -> Credentials | None:
        asked.append((name, host))
        return answers.get((name, host))

    podman = tmp_path / "containers-auth.json"
    podman.write_text(json.dumps({
        "credHelpers": {"ghcr.io": "pass"},
        "auths": {"quay.io": {"auth": base64.b64encode(b"podman:pw").decode()}},
    }))
    docker = tmp_path / "config.json"
    docker.write_text(json.dumps({
        "credsStore": "desktop",
        "credHelpers": {"https://GHCR.io": "never-asked"},
        "auths": {"quay.io": {"auth": base64.b64encode(b"docker:pw").decode()},
                  "reg.example": {"auth": base64.b64encode(b"plain:pw").decode()}},
    }))
    store = CredentialStore(tmp_path / "own.json", fallbacks=[podman, tmp_path / "absent.json", docker], helper=helper)
    assert store.get("ghcr.io") == Credentials("gh", "token1")  # Podman's credHelpers, the first file
    assert store.get("quay.io") == Credentials("podman", "pw")  # Podman's auths before Docker's
    assert store.get("docker.io") == Credentials("hub", "pw")  # Docker's credsStore
    assert store.get("reg.example") == Credentials("plain", "pw")  # the store has nothing: auths
    assert ("never-asked", "ghcr.io") not in asked and ("desktop", "reg.example") in asked
    assert store.get("unknown.example") is None


def test_run_helper_speaks_the_docker_credential_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from isobox.images.auth import run_helper

    log = tmp_path / "asked"
    script = tmp_path / "docker-credential-test"
    script.write_text(f"""#!/bin/sh
read -r server
echo "$1 $server" >> {log}
case "$server" in
  https://index.docker.io/v1/) echo '{{"ServerURL":"x","Username":"hub","Secret":"s3cret"}}' ;;
  token.example) echo '{{"Username":"<token>","Secret":"refresh"}}' ;;
  broken.example) echo 'not json' ;;
  failing.example) echo 'keychain locked' >&2; exit 1 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert run_helper("test", "docker.io") == Credentials("hub", "s3cret")
    assert run_helper("test", "elsewhere.example") is None
    assert not caplog.records, "a helper with nothing for a registry is not a problem"
    assert run_helper("test", "token.example") is None  # identity tokens are not used
    assert run_helper("test", "broken.example") is None
    assert run_helper("test", "failing.example") is None
    assert run_helper("absent", "docker.io") is None
    assert run_helper("../test", "docker.io") is None, "a helper is a name on PATH, never a path"
    warnings = [r.getMessage() for r in caplog.records]
    assert any("identity token" in w for w in warnings) and any("keychain locked" in w for w in warnings)
    assert any("docker-credential-absent is not installed" in w for w in warnings)
    assert any("not a helper name" in w for w in warnings)
    assert log.read_text().splitlines()[0] == "get https://index.docker.io/v1/"


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
