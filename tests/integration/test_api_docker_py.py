"""`isobox serve` driven by docker-py: its containers, images, networks and volumes collections, and its
errors; and bad input sent by hand (malformed JSON, wrong types, huge bodies, a client that goes away)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from fixtures import api_server
from fixtures import registry as registries
from fixtures.registry_images import seed

pytestmark = pytest.mark.integration


@pytest.fixture
def api(cli: object, isobox_root: Path) -> Iterator[api_server.ApiServer]:
    server = api_server.start(isobox_root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(api: api_server.ApiServer) -> Iterator[docker.DockerClient]:
    connection = docker.DockerClient(base_url=api.url, version="auto")
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("api-py-registry"))
    try:
        seed(server, "busybox", "lib/busybox:1")
        yield server
    finally:
        server.stop()


def test_containers(client: docker.DockerClient) -> None:
    assert client.version()["ApiVersion"] == "1.44" and client.ping() is True
    container = client.containers.run("busybox", ["sh", "-c", "echo hello; sleep 60"], name="py1", detach=True,
                                      labels={"app": "py"}, environment={"K": "V"}, mem_limit="64m")
    assert container.status in ("created", "running")
    container.reload()
    assert container.status == "running" and container.name == "py1"
    assert container.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024 and "K=V" in container.attrs["Config"]["Env"]
    assert [c.name for c in client.containers.list(filters={"label": "app=py"})] == ["py1"]
    assert client.containers.list(filters={"label": "app=other"}) == []
    assert client.containers.get("py1").id == container.id
    assert container.logs() == b"hello\n"
    top = container.top()
    assert top["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]  # Docker's ps -ef
    assert "sleep 60" in [row[-1] for row in top["Processes"]]
    stats = container.stats(stream=False)
    assert stats["memory_stats"]["usage"] > 0 and stats["cpu_stats"]["online_cpus"] >= 1
    with pytest.raises(docker.errors.APIError) as taken:
        client.containers.create("busybox", "true", name="py1")
    assert taken.value.status_code == 409
    container.stop(timeout=1)
    assert container.wait()["StatusCode"] == 137
    assert client.containers.list() == [] and len(client.containers.list(all=True)) == 1
    container.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("py1")
    assert client.containers.prune()["SpaceReclaimed"] == 0


def test_images(client: docker.DockerClient, registry: registries.Registry) -> None:
    name = f"{registry.host}/lib/busybox"
    image = client.images.pull(name, tag="1")
    assert f"{name}:1" in image.tags and image.id.startswith("sha256:")
    assert image.tag("example.com/py/tool", "v1") is True
    assert sorted(client.images.get(image.id).tags) == sorted([f"{name}:1", "example.com/py/tool:v1"])
    assert image.id in [i.id for i in client.images.list()]
    assert image.history()[0]["Id"] == image.id
    client.images.remove("example.com/py/tool:v1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("example.com/py/tool:v1")
    with pytest.raises(docker.errors.NotFound):
        client.images.pull(f"{registry.host}/lib/absent", tag="1")
    saved = b"".join(image.save())
    client.images.remove(image.id, force=True)
    loaded = client.images.load(saved)
    assert [i.id for i in loaded] == [image.id]


def test_networks_and_volumes(client: docker.DockerClient) -> None:
    network = client.networks.create("pynet", driver="bridge", labels={"z": "1", "a": "2"})
    assert network.attrs["Labels"] == {"z": "1", "a": "2"}
    assert "pynet" in [n.name for n in client.networks.list(filters={"label": "z=1"})]
    volume = client.volumes.create("pyvol", labels={"k": "v"})
    assert volume.attrs["Labels"] == {"k": "v"} and [v.name for v in client.volumes.list()] == ["pyvol"]
    container = client.containers.run("busybox", "sleep 60", detach=True, name="pymember", network="pynet",
                                      volumes={"pyvol": {"bind": "/data", "mode": "rw"}})
    network.reload()
    assert list(network.attrs["Containers"]) == [container.id]
    with pytest.raises(docker.errors.APIError) as busy:
        network.remove()
    assert busy.value.status_code == 409
    container.remove(force=True)
    network.remove()
    volume.remove()
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("pynet")
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("pyvol")


def test_bad_input_is_refused_and_leaves_nothing(api: api_server.ApiServer) -> None:
    with api.http() as http:
        bad_json = http.post("/v1.44/containers/create", content=b"{not json",
                             headers={"Content-Type": "application/json"})
        assert bad_json.status_code == 400 and "malformed JSON" in bad_json.json()["message"]
        wrong_type = http.post("/v1.44/containers/create", json={"Image": "busybox", "Cmd": 5})
        assert wrong_type.status_code == 400 and "Cmd" in wrong_type.json()["message"]
        negative = http.post("/v1.44/containers/create", json={"Image": "busybox", "HostConfig": {"Memory": -5}})
        assert negative.status_code == 400 and "Memory" in negative.json()["message"]
        links = {"Image": "busybox", "HostConfig": {"Links": ["other:alias"]}}
        unsupported = http.post("/v1.44/containers/create", json=links)
        assert unsupported.status_code == 400 and "HostConfig.Links" in unsupported.json()["message"]
        huge = http.post("/v1.44/containers/create", content=b"{" + b" " * (5 * 1024 * 1024) + b"}")
        assert huge.status_code == 400 and "limit" in huge.json()["message"]
        assert http.get("/v1.44/containers/json", params={"all": "1"}).json() == []
        assert http.get("/v1.44/containers/json", params={"filters": '{"nope": ["x"]}'}).status_code == 400
        created = http.post("/v1.44/containers/create", params={"name": "talker"},
                            json={"Image": "busybox", "Cmd": ["sh", "-c", "while true; do echo tick; sleep 0.1; done"]})
        assert created.status_code == 201
        assert http.post("/v1.44/containers/talker/start").status_code == 204
        assert http.post("/v1.44/containers/talker/start").status_code == 304

    # A follower that vanishes mid-stream: the workload keeps running and the server keeps serving.
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(str(api.socket))
    raw.sendall(b"GET /v1.44/containers/talker/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: docker\r\n\r\n")
    assert b"200 OK" in raw.recv(4096)
    raw.close()
    with api.http() as http:
        assert http.get("/_ping").text == "OK"
        state = http.get("/v1.44/containers/talker/json").json()["State"]
        assert state["Running"] is True
        assert http.delete("/v1.44/containers/talker", params={"force": "1"}).status_code == 204


def test_exec_archives_logs_and_events(client: docker.DockerClient, api: api_server.ApiServer) -> None:
    import io
    import tarfile
    import time

    since = int(time.time()) - 1
    container = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done; "
                                                  "sleep 60"], name="pyexec", detach=True)
    streamed = []
    for chunk in container.logs(stream=True, follow=True):
        streamed.append(chunk)
        if b"line 3" in b"".join(streamed):
            break
    assert b"".join(streamed).startswith(b"line 1\nline 2\n")
    code, output = container.exec_run(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"], demux=True)
    assert code == 3 and output == (b"to-out\n", b"to-err\n")
    code, output = container.exec_run("cat /etc/hostname", stream=False)
    assert code == 0 and output.strip() == container.id[:12].encode()
    started = client.api.exec_create(container.id, ["sleep", "1"])
    client.api.exec_start(started["Id"], detach=True)
    assert client.api.exec_inspect(started["Id"])["ContainerID"] == container.id

    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as archive:
        data = b"from docker-py\n"
        member = tarfile.TarInfo("dir/note.txt")
        member.size, member.mode = len(data), 0o640
        archive.addfile(member, io.BytesIO(data))
    assert container.put_archive("/tmp", packed.getvalue()) is True
    chunks, stat = container.get_archive("/tmp/dir")
    assert stat["name"] == "dir" and stat["mode"] & (1 << 31)  # Go's os.ModeDir
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        extracted = archive.extractfile("dir/note.txt")
        assert extracted is not None and extracted.read() == b"from docker-py\n"
        assert archive.getmember("dir/note.txt").mode & 0o777 == 0o640
    with pytest.raises(docker.errors.NotFound):
        container.get_archive("/no/such/file")
    container.remove(force=True)
    seen = [(e["Type"], e["Action"]) for e in client.events(since=since, until=int(time.time()) + 1, decode=True,
                                                                filters={"container": "pyexec"})]
    assert ("container", "create") in seen and ("container", "destroy") in seen
    assert any(action.startswith("exec_start") for _, action in seen)
