"""TLS and authentication against real registries: a test CA, htpasswd basic auth, and token auth with
the registry validating JWTs from the issuer in fixtures/registry_token.py (the Docker Hub / GHCR flow)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures import registry as registries
from fixtures.registry import PASSWORD, USER
from fixtures.registry_images import seed
from fixtures.registry_token import TokenIssuer
from isobox.errors import ImagePullError
from isobox.service import images as service
from isobox.service.context import Context

pytestmark = pytest.mark.integration
CREDS = f"{USER}:{PASSWORD}"


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    work = tmp_path_factory.mktemp("tls")
    server = registries.start(work, tls=registries.make_certs(work / "certs"))
    try:
        seed(server, "busybox", "lib/busybox:1")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    work = tmp_path_factory.mktemp("basic")
    server = registries.start(work, htpasswd=registries.htpasswd_file(work))
    try:
        seed(server, "busybox", "lib/busybox:1", creds=CREDS)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[registries.Registry, TokenIssuer]]:
    work = tmp_path_factory.mktemp("token")
    issuer = TokenIssuer(work / "issuer")
    issuer.start()
    server = registries.start(work, token_auth=issuer.registry_auth())
    try:
        seed(server, "busybox", "lib/busybox:1", creds=CREDS)
        yield server, issuer
    finally:
        server.stop()
        issuer.stop()


# ---- TLS ---------------------------------------------------------------------------------------


def test_tls_needs_the_ca(ctx: Context, tls_registry: registries.Registry) -> None:
    with pytest.raises(ImagePullError, match="CERTIFICATE_VERIFY_FAILED"):
        service.pull(ctx, f"{tls_registry.host}/lib/busybox:1")
    assert tls_registry.tls is not None
    record = service.pull(ctx, f"{tls_registry.host}/lib/busybox:1", ca_cert=tls_registry.tls.ca_cert)
    assert record.layers


def test_tls_ca_from_env_and_from_certs_dir(
    ctx: Context, tls_registry: registries.Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tls_registry.tls is not None
    monkeypatch.setenv("ISOBOX_CA", str(tls_registry.tls.ca_cert))
    service.pull(ctx, f"{tls_registry.host}/lib/busybox:1")
    monkeypatch.delenv("ISOBOX_CA")
    certs = ctx.paths.lib / "certs.d" / tls_registry.host
    certs.mkdir(parents=True)
    shutil.copy(tls_registry.tls.ca_cert, certs / "ca.crt")
    service.pull(ctx, f"{tls_registry.host}/lib/busybox:1")


def test_insecure_is_tls_without_verification_where_the_registry_has_tls(
    ctx: Context, tls_registry: registries.Registry, basic_registry: registries.Registry
) -> None:
    """Docker's insecure registry: a certificate from an unknown CA is accepted, and TLS is still used
    (the registry serves HTTPS only); a registry without TLS gets plain HTTP (every other test here)."""
    record = service.pull(ctx, f"{tls_registry.host}/lib/busybox:1", insecure=True)
    assert record.layers
    from isobox.images.registry import RegistryClient, RegistryOptions

    with RegistryClient(tls_registry.host, RegistryOptions(insecure=True)) as client:
        assert client.base.startswith("https://")
    with RegistryClient(basic_registry.host, RegistryOptions(insecure=True)) as client:
        assert client.base.startswith("http://")


# ---- basic auth --------------------------------------------------------------------------------


def test_basic_auth_login_pull_logout(ctx: Context, basic_registry: registries.Registry) -> None:
    name = f"{basic_registry.host}/lib/busybox:1"
    with pytest.raises(ImagePullError, match=f"access denied; log in with `isobox login {basic_registry.host}`"):
        service.pull(ctx, name, insecure=True)
    with pytest.raises(ImagePullError, match="HTTP 401"):
        service.login(ctx, basic_registry.host, USER, "wrong", insecure=True)
    assert not (ctx.paths.lib / "auth.json").exists()
    service.login(ctx, basic_registry.host, USER, PASSWORD, insecure=True)
    auth_file = ctx.paths.lib / "auth.json"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    assert service.pull(ctx, name, insecure=True).layers
    assert service.logout(ctx, basic_registry.host) is True
    with pytest.raises(ImagePullError, match="access denied"):
        service.pull(ctx, name, insecure=True)


def test_docker_config_json_is_read(
    ctx: Context, basic_registry: registries.Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = tmp_path / "docker"
    docker.mkdir()
    encoded = base64.b64encode(CREDS.encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {f"http://{basic_registry.host}": {"auth": encoded}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    assert service.pull(ctx, f"{basic_registry.host}/lib/busybox:1", insecure=True).layers
    assert not (ctx.paths.lib / "auth.json").exists(), "Docker's credentials are read, never copied"


def test_docker_credential_helper_and_podman_auth_file(
    ctx: Context, basic_registry: registries.Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Docker credential helper (a real executable, by the docker-credential-helpers protocol) named in
    config.json's credHelpers supplies the password; so does Podman's auth.json through REGISTRY_AUTH_FILE."""
    name = f"{basic_registry.host}/lib/busybox:1"
    bin_dir, docker, asked = tmp_path / "bin", tmp_path / "docker", tmp_path / "asked"
    bin_dir.mkdir()
    docker.mkdir()
    helper = bin_dir / "docker-credential-isoboxtest"
    helper.write_text(f"""#!/bin/sh
read -r server
echo "$1 $server" >> {asked}
[ "$server" = "{basic_registry.host}" ] || {{ echo "credentials not found in native keychain"; exit 1; }}
printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}' "$server"
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "absent.json"))
    (docker / "config.json").write_text(json.dumps({"credHelpers": {basic_registry.host: "isoboxtest"}}))
    assert service.pull(ctx, name, insecure=True).layers
    assert asked.read_text().splitlines() == [f"get {basic_registry.host}"]
    # The default helper (credsStore) is not installed: a warning, and the registry refuses the pull.
    (docker / "config.json").write_text(json.dumps({"credsStore": "isoboxtest"}))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(ImagePullError, match="access denied"):
        service.pull(ctx, name, insecure=True)
    podman = tmp_path / "auth.json"
    podman.write_text(json.dumps({"auths": {basic_registry.host: {"auth": base64.b64encode(CREDS.encode()).decode()}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(podman))
    assert service.pull(ctx, name, insecure=True).layers
    assert not (ctx.paths.lib / "auth.json").exists(), "credentials are read where they are, never copied"


# ---- token auth --------------------------------------------------------------------------------


def test_token_auth_anonymous_pull(ctx: Context, token_registry: tuple[registries.Registry, TokenIssuer]) -> None:
    registry, issuer = token_registry
    issuer.requests.clear()
    record = service.pull(ctx, f"{registry.host}/lib/busybox:1", insecure=True)
    assert record.layers
    assert issuer.requests, "the pull went through the Bearer token flow"
    assert issuer.requests[0]["scope"] == ["repository:lib/busybox:pull"]
    assert "account" not in issuer.requests[0]
    assert len(issuer.requests) <= 2, "the token is cached, not fetched per request"


def test_token_auth_push_needs_login(ctx: Context, token_registry: tuple[registries.Registry, TokenIssuer]) -> None:
    registry, issuer = token_registry
    service.install_builtin(ctx)
    target = f"{registry.host}/team/busybox:1"
    with pytest.raises(ImagePullError, match="access denied"):
        service.push(ctx, "busybox", target, insecure=True)
    with pytest.raises(ImagePullError, match="refused access as 'isobox'"):
        service.login(ctx, registry.host, USER, "wrong", insecure=True)
    service.login(ctx, registry.host, USER, PASSWORD, insecure=True)
    issuer.requests.clear()
    service.push(ctx, "busybox", target, insecure=True)
    assert any(q.get("account") == [USER] for q in issuer.requests)
    # The registry names the actions of its challenge in no fixed order (a set): "pull,push" or "push,pull".
    scopes = [s.rpartition(":") for q in issuer.requests for s in q.get("scope", [])]
    assert any(repo == "repository:team/busybox" and set(actions.split(",")) == {"pull", "push"}
               for repo, _, actions in scopes)
