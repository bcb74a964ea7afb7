"""`isobox serve` driven by the docker CLI (28.x, client only): the same workloads, images, networks and
volumes as the isobox CLI sees, through Docker's API."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures import api_server
from fixtures import registry as registries
from fixtures.registry_images import seed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which(api_server.DOCKER) is None, reason="the docker CLI is not installed"),
]


@pytest.fixture
def api(cli: object, isobox_root: Path) -> Iterator[api_server.ApiServer]:
    server = api_server.start(isobox_root)
    try:
        yield server
    finally:
        server.stop()
    assert not server.socket.exists(), "the socket outlived the server"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("api-registry"))
    try:
        seed(server, "busybox", "lib/busybox:1")
        yield server
    finally:
        server.stop()


def test_version_info_and_docker_errors(api: api_server.ApiServer) -> None:
    version = json.loads(api.docker("version", "--format", "{{json .Server}}", check=True).stdout)
    assert version["ApiVersion"] == "1.44" and version["MinAPIVersion"] == "1.24"
    info = json.loads(api.docker("info", "--format", "{{json .}}", check=True).stdout)
    assert info["OSType"] == "linux" and info["Swarm"]["LocalNodeState"] == "inactive"
    missing = api.docker("inspect", "missing")
    assert missing.returncode == 1 and "No such object: missing" in missing.stderr
    gone = api.docker("rm", "missing")
    assert gone.returncode == 1 and "No such container: missing" in gone.stderr
    with api.http() as client:
        old = client.get("/v1.12/version")
        assert old.status_code == 400 and "client version 1.12 is too old" in old.json()["message"]
        new = client.get("/v1.99/version")
        assert new.status_code == 400 and "Maximum supported API version is 1.44" in new.json()["message"]
        ping = client.head("/_ping")
        assert ping.status_code == 200 and ping.headers["Api-Version"] == "1.44"
        assert ping.headers["Ostype"] == "linux" and ping.headers["Cache-Control"].startswith("no-cache")
        assert client.post("/build").status_code == 400  # no context in the body
        remote = client.post("/build?remote=https://git.invalid/app.git", content=b"FROM busybox\n")
        assert remote.status_code == 501 and "remote" in remote.json()["message"]


def test_container_lifecycle(api: api_server.ApiServer, cli: object) -> None:
    created = api.docker("create", "--name", "c1", "-e", "A=1", "--label", "team=x", "busybox", "sleep", "60",
                         check=True).stdout.strip()
    assert len(created) == 64
    assert api.docker("inspect", "-f", "{{.State.Status}}", "c1", check=True).stdout.strip() == "created"
    api.docker("start", "c1", check=True)
    assert api.docker("inspect", "-f", "{{.State.Status}}", "c1", check=True).stdout.strip() == "running"
    listed = api.docker("ps", "-a", "--format", "{{.Names}} {{.State}}", check=True).stdout.split("\n")
    assert "c1 running" in listed
    document = json.loads(api.docker("inspect", "c1", check=True).stdout)[0]
    assert document["Name"] == "/c1" and "A=1" in document["Config"]["Env"]
    assert document["Config"]["Labels"]["team"] == "x" and document["Image"].startswith("sha256:")
    assert document["Created"].endswith("Z") and len(document["Created"].split(".")[1]) == 10

    api.docker("pause", "c1", check=True)
    assert api.docker("inspect", "-f", "{{.State.Paused}}", "c1", check=True).stdout.strip() == "true"
    api.docker("unpause", "c1", check=True)
    api.docker("rename", "c1", "c2", check=True)
    assert api.docker("inspect", "-f", "{{.Name}}", created, check=True).stdout.strip() == "/c2"
    started = time.monotonic()
    api.docker("stop", "-t", "1", "c2", check=True)
    assert time.monotonic() - started < 10
    assert api.docker("inspect", "-f", "{{.State.Status}}", "c2", check=True).stdout.strip() == "exited"
    api.docker("rm", "c2", check=True)
    assert api.docker("ps", "-a", "-q", check=True).stdout.strip() == ""


def test_run_detached_wait_logs_and_the_isobox_cli(api: api_server.ApiServer, cli: object) -> None:
    run = api.docker("run", "-d", "--name", "job", "busybox", "sh", "-c", "echo out; echo err >&2; sleep 1; exit 3",
                     check=True)
    assert len(run.stdout.strip()) == 64
    assert api.docker("wait", "job", check=True).stdout.strip() == "3"
    logs = api.docker("logs", "job", check=True)
    assert logs.stdout == "out\n" and logs.stderr == "err\n"
    assert "Exited (3)" in api.docker("ps", "-a", "--filter", "name=job", "--format", "{{.Status}}").stdout
    # One engine: the isobox CLI sees what Docker's API made, and the other way round.
    isobox_ps = json.loads(cli("ps", "-a", "--json", check=True).stdout)  # type: ignore[operator]
    assert [w["name"] for w in isobox_ps] == ["job"] and isobox_ps[0]["exit_code"] == 3
    cli("run", "-d", "--name", "native", "busybox", "sleep", "60", check=True)  # type: ignore[operator]
    names = api.docker("ps", "--format", "{{.Names}}", check=True).stdout.split()
    assert names == ["native"]
    api.docker("rm", "-f", "native", "job", check=True)


def test_run_rm_wait_keeps_the_exit_code(api: api_server.ApiServer) -> None:
    with api.http() as client:
        body = {"Image": "busybox", "Cmd": ["sh", "-c", "sleep 0.5; exit 7"], "HostConfig": {"AutoRemove": True}}
        created = client.post("/v1.44/containers/create", json=body)
        assert created.status_code == 201, created.text
        ident = created.json()["Id"]
        with client.stream("POST", f"/v1.44/containers/{ident}/wait", params={"condition": "removed"}) as waiting:
            assert waiting.status_code == 200  # the headers came before the container even started
            assert client.post(f"/v1.44/containers/{ident}/start").status_code == 204
            assert json.loads(waiting.read()) == {"StatusCode": 7, "Error": None}
        assert client.get(f"/v1.44/containers/{ident}/json").status_code == 404


def test_images_pull_tag_rmi(api: api_server.ApiServer, registry: registries.Registry) -> None:
    name = f"{registry.host}/lib/busybox:1"
    pulled = api.docker("pull", name, check=True)
    assert f"Status: Downloaded newer image for {name}" in pulled.stdout
    again = api.docker("pull", name, check=True)
    assert "Image is up to date" in again.stdout
    missing = api.docker("pull", f"{registry.host}/lib/nothing:1")
    assert missing.returncode != 0 and "not found" in missing.stderr
    api.docker("tag", name, "example.com/team/tool:v2", check=True)
    rows = api.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", check=True).stdout.splitlines()
    ids = {row.split()[0]: row.split()[1] for row in rows}
    assert ids[name] == ids["example.com/team/tool:v2"]
    image_id = api.docker("image", "inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()
    assert image_id.startswith("sha256:") and image_id[7:19] == ids[name]
    assert api.docker("run", "--rm", "-d", name, "sh", "-c", "exit 0").returncode == 0
    untagged = api.docker("rmi", "example.com/team/tool:v2", check=True)
    assert "Untagged: example.com/team/tool:v2" in untagged.stdout
    assert name in api.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout


def test_networks_and_volumes(api: api_server.ApiServer) -> None:
    net_id = api.docker("network", "create", "--label", "b=2", "--label", "a=1", "apinet", check=True).stdout.strip()
    assert "apinet" in api.docker("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    network = json.loads(api.docker("network", "inspect", "apinet", check=True).stdout)[0]
    assert network["Id"] == net_id and network["Labels"] == {"b": "2", "a": "1"} and network["Driver"] == "bridge"
    api.docker("volume", "create", "--label", "k=v", "apivol", check=True)
    volume = json.loads(api.docker("volume", "inspect", "apivol", check=True).stdout)[0]
    assert volume["Labels"] == {"k": "v"} and volume["Driver"] == "local"
    assert "apivol" in api.docker("volume", "ls", "-q", check=True).stdout.split()

    api.docker("run", "-d", "--name", "member", "--network", "apinet", "--network-alias", "svc",
               "-v", "apivol:/data", "busybox", "sh", "-c", "echo kept > /data/f; sleep 60", check=True)
    document = json.loads(api.docker("inspect", "member", check=True).stdout)[0]
    endpoint = document["NetworkSettings"]["Networks"]["apinet"]
    assert endpoint["NetworkID"] == net_id and "svc" in endpoint["Aliases"] and endpoint["IPAddress"]
    assert document["Mounts"][0]["Name"] == "apivol"
    members = json.loads(api.docker("network", "inspect", "apinet", check=True).stdout)[0]["Containers"]
    assert [m["Name"] for m in members.values()] == ["member"]
    busy = api.docker("network", "rm", "apinet")
    assert busy.returncode != 0 and "in use" in busy.stderr
    api.docker("rm", "-f", "member", check=True)
    api.docker("network", "rm", "apinet", check=True)
    api.docker("volume", "rm", "apivol", check=True)
    assert "apivol" not in api.docker("volume", "ls", "-q", check=True).stdout.split()


@pytest.mark.vm
def test_isolation_vm(api: api_server.ApiServer, cli: object) -> None:
    api.docker("run", "-d", "--name", "vm1", "--isolation", "vm", "--network", "none", "busybox",
               "sh", "-c", "echo from-the-vm; sleep 60", check=True, timeout=180)
    document = json.loads(api.docker("inspect", "vm1", check=True).stdout)[0]
    assert document["Isobox"]["Kind"] == "vm" and document["HostConfig"]["Isolation"] == "vm"
    assert document["State"]["Running"] is True
    kinds = {w["name"]: w["kind"] for w in json.loads(cli("ps", "--json", check=True).stdout)}  # type: ignore[operator]
    assert kinds == {"vm1": "vm"}
    deadline = time.monotonic() + 60
    while "from-the-vm" not in api.docker("logs", "vm1").stdout and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "from-the-vm" in api.docker("logs", "vm1").stdout
    api.docker("rm", "-f", "vm1", check=True, timeout=120)


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate is missing")
def test_socket_activation(isobox_root: Path) -> None:
    """isobox.socket's way: systemd listens, isobox serve -H fd:// takes the socket over (sd_listen_fds)."""
    import os
    import signal
    import subprocess
    import sys

    path = isobox_root / "activated.sock"
    env = dict(os.environ, ISOBOX_ROOT=str(isobox_root))
    process = subprocess.Popen(
        ["systemd-socket-activate", "-E", "PYTHONPATH", "-E", "ISOBOX_ROOT", "-l", str(path),
         sys.executable, "-m", "isobox.cli.main", "serve", "-H", "fd://"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        done = subprocess.run([api_server.DOCKER, "version", "--format", "{{.Server.APIVersion}}"],
                              env=dict(os.environ, DOCKER_HOST=f"unix://{path}"), capture_output=True, text=True,
                              timeout=60)
        assert done.stdout.strip() == "1.44", done.stderr
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
