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
    since = str(int(time.time()) - 1)
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
    shown = api.docker("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter", "type=image",
                       "--format", "{{.Action}} {{.Actor.ID}}", check=True).stdout.splitlines()
    assert f"pull {name}" in shown and "tag example.com/team/tool:v2" in shown
    assert any(line.startswith("untag ") and "example.com/team/tool" in line for line in shown)


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


def _in_terminal(api: api_server.ApiServer, command: str, timeout: float = 120) -> tuple[int, str]:
    """A docker command under a pseudo-terminal (util-linux script), as a user at a terminal runs it."""
    import os
    import subprocess

    env = dict(os.environ, DOCKER_HOST=api.url)
    done = subprocess.run(["script", "-eqc", command, "/dev/null"], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout


def _exec_resized(api: api_server.ApiServer, container: str) -> tuple[bytes, int]:
    """An exec -t started at 10x20 over a hijacked connection, resized to 44x132 while it runs: what
    `stty size` says after the resize, and the exit code the instance records."""
    import socket

    with api.http() as client:
        body = {"Cmd": ["sh", "-c", "sleep 3; stty size"], "Tty": True, "AttachStdin": True, "AttachStdout": True,
                "ConsoleSize": [10, 20]}
        instance = client.post(f"/v1.44/containers/{container}/exec", json=body).json()["Id"]
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(api.socket))
            start = b'{"Tty": true}'
            conn.sendall(b"POST /v1.44/exec/" + instance.encode() + b"/start HTTP/1.1\r\nHost: d\r\n"
                         b"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(start)).encode() + b"\r\n\r\n" + start)
            time.sleep(1.5)
            assert client.post(f"/v1.44/exec/{instance}/resize", params={"h": 44, "w": 132}).status_code == 200
            conn.settimeout(60)
            received = b""
            while chunk := conn.recv(4096):
                received += chunk
        assert received.startswith(b"HTTP/1.1 101")
        return received.split(b"\r\n\r\n", 1)[1], client.get(f"/v1.44/exec/{instance}/json").json()["ExitCode"]


def test_run_in_the_foreground(api: api_server.ApiServer) -> None:
    """attach before start (nothing printed is lost), exit codes, piped stdin, a terminal, a failed start."""
    started = time.monotonic()
    hello = api.docker("run", "--rm", "busybox", "echo", "hi")
    assert (hello.returncode, hello.stdout) == (0, "hi\n"), hello.stderr
    assert time.monotonic() - started < 30
    both = api.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (both.returncode, both.stdout, both.stderr) == (3, "out\n", "err\n")
    piped = api.docker("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; exit 4", input=b"shout\n")
    assert (piped.returncode, piped.stdout) == (4, "SHOUT\n")
    code, shown = _in_terminal(api, "docker run --rm -it busybox sh -c 'tty; echo $TERM; exit 6'")
    assert code == 6 and "/dev/pts/0" in shown and "xterm" in shown
    missing = api.docker("run", "--rm", "busybox", "no-such-command")
    assert missing.returncode == 127 and "no-such-command" in missing.stderr
    assert api.docker("ps", "-a", "-q", check=True).stdout.strip() == ""  # --rm: nothing left, even after a failure


def test_exec_attach_and_resize(api: api_server.ApiServer) -> None:
    api.docker("run", "-d", "--name", "box", "busybox", "sh", "-c",
               "trap 'exit 9' TERM; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done", check=True)
    plain = api.docker("exec", "box", "sh", "-c", "echo inside; echo oops >&2; exit 4")
    assert (plain.returncode, plain.stdout, plain.stderr) == (4, "inside\n", "oops\n")
    piped = api.docker("exec", "-i", "box", "sh", "-c", "wc -c", input=b"12345")
    assert piped.stdout.strip() == "5"
    code, shown = _in_terminal(api, "docker exec -it box sh -c 'tty; echo $TERM; exit 2'")
    assert code == 2 and "/dev/pts/" in shown and "xterm" in shown
    assert _exec_resized(api, "box") == (b"44 132\r\n", 0)
    import os
    import subprocess

    env = dict(os.environ, DOCKER_HOST=api.url)
    attached = subprocess.Popen([api_server.DOCKER, "attach", "--sig-proxy=false", "box"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    time.sleep(1.5)
    api.docker("stop", "-t", "5", "box", check=True)
    out, _ = attached.communicate(timeout=30)
    assert attached.returncode == 9 and b"tick" in out
    assert api.docker("inspect", "-f", "{{.State.ExitCode}}", "box", check=True).stdout.strip() == "9"
    with api.http() as client:
        assert client.post("/v1.44/containers/box/resize", params={"h": 40, "w": 100}).status_code == 409
    api.docker("rm", "box", check=True)


def test_cp_both_ways_and_a_hostile_symlink(api: api_server.ApiServer, tmp_path: Path) -> None:
    api.docker("run", "-d", "--name", "files", "-v", "cpvol:/vol", "busybox", "sh", "-c",
               "mkdir -p /d/sub && echo deep > /d/sub/f && ln -s / /d/up && ln -s /etc/passwd /d/pw && "
               "ln -s /vol /d/tovol && sleep 300", check=True)
    time.sleep(1)
    source = tmp_path / "payload.txt"
    source.write_text("payload\n")
    api.docker("cp", str(source), "files:/tmp/", check=True)
    assert api.docker("exec", "files", "cat", "/tmp/payload.txt", check=True).stdout == "payload\n"
    api.docker("cp", "files:/d", str(tmp_path / "out"), check=True)
    assert (tmp_path / "out" / "sub" / "f").read_text() == "deep\n"
    assert (tmp_path / "out" / "up").is_symlink() and str((tmp_path / "out" / "up").readlink()) == "/"
    # The container's symlink to / leads to the container's root, never the host's.
    marker = f"isobox-cp-{time.monotonic_ns()}"
    (tmp_path / marker).write_text("x")
    api.docker("cp", str(tmp_path / marker), "files:/d/up/tmp/", check=True)
    assert not Path("/tmp", marker).exists()
    assert api.docker("exec", "files", "cat", f"/tmp/{marker}", check=True).stdout == "x"
    shadow = api.docker("cp", "files:/d/pw", "-", check=True)  # the link itself, as a tar entry
    assert "root:" not in shadow.stdout
    api.docker("cp", str(source), "files:/d/tovol/", check=True)  # through a link into a volume
    assert api.docker("exec", "files", "cat", "/vol/payload.txt", check=True).stdout == "payload\n"
    missing = api.docker("cp", "files:/no/such/path", str(tmp_path / "x"))
    assert missing.returncode != 0 and "Could not find the file /no/such/path" in missing.stderr
    api.docker("rm", "-f", "files", check=True)
    api.docker("volume", "rm", "cpvol", check=True)


def test_stats_events_health_and_connect(api: api_server.ApiServer) -> None:
    since = str(int(time.time()) - 1)
    api.docker("network", "create", "side", check=True)
    api.docker("run", "-d", "--name", "doc", "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
               "--health-retries", "2", "--label", "team=qa", "busybox", "sh", "-c",
               "sleep 2; touch /tmp/ok; sleep 300", check=True)
    stats = json.loads(api.docker("stats", "--no-stream", "--format", "{{json .}}", "doc", check=True).stdout)
    assert stats["Name"] == "doc" and stats["PIDs"] != "0"
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline and status != "healthy":
        status = api.docker("inspect", "-f", "{{.State.Health.Status}}", "doc", check=True).stdout.strip()
        time.sleep(0.5)
    assert status == "healthy"
    health = json.loads(api.docker("inspect", "-f", "{{json .State.Health}}", "doc", check=True).stdout)
    assert health["FailingStreak"] == 0 and health["Log"][-1]["ExitCode"] == 0
    assert "(healthy)" in api.docker("ps", "--format", "{{.Status}}", check=True).stdout
    api.docker("network", "connect", "--alias", "doc-alias", "side", "doc", check=True)
    addresses = api.docker("exec", "doc", "ip", "-4", "-o", "addr", check=True).stdout
    assert " eth1 " in addresses
    with api.http() as client:
        one = client.get("/v1.44/containers/doc/stats", params={"stream": "false"}).json()
    assert set(one["networks"]) == {"eth0", "eth1"} and one["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    api.docker("network", "disconnect", "side", "doc", check=True)
    assert " eth1 " not in api.docker("exec", "doc", "ip", "-4", "-o", "addr", check=True).stdout
    api.docker("rm", "-f", "doc", check=True)
    api.docker("network", "rm", "side", check=True)
    until = str(int(time.time()) + 1)
    time.sleep(1.2)
    shown = api.docker("events", "--since", since, "--until", until, "--format", "{{.Type}} {{.Action}}",
                       check=True).stdout.splitlines()
    for expected in ("network create", "container create", "container start", "container health_status: healthy",
                     "network connect", "network disconnect", "container die", "container destroy",
                     "network destroy"):
        assert expected in shown, (expected, shown)
    labelled = api.docker("events", "--since", since, "--until", until, "--filter", "label=team=qa",
                          "--filter", "event=start", "--format", "{{.Actor.Attributes.name}}", check=True)
    assert labelled.stdout.split() == ["doc"]


@pytest.mark.vm
def test_vm_streams_exec_cp_and_auto_remove(api: api_server.ApiServer, tmp_path: Path) -> None:
    hello = api.docker("run", "--rm", "--isolation", "vm", "--network", "none", "busybox", "sh", "-c",
                       "echo from-vm; exit 5", timeout=180)
    assert (hello.returncode, hello.stdout) == (5, "from-vm\n"), hello.stderr
    piped = api.docker("run", "--rm", "-i", "--isolation", "vm", "--network", "none", "busybox", "tr", "a-z", "A-Z",
                       input=b"quiet\n", timeout=180)
    assert (piped.returncode, piped.stdout) == (0, "QUIET\n"), piped.stderr
    code, shown = _in_terminal(api, "docker run --rm -it --isolation vm --network none busybox sh -c 'tty; exit 7'",
                               timeout=180)
    assert code == 7 and "/dev/" in shown
    api.docker("run", "-d", "--name", "vmbox", "--isolation", "vm", "--network", "none", "--health-cmd",
               "test -d /tmp", "--health-interval", "1s", "busybox", "sh", "-c",
               "trap 'exit 9' TERM; while :; do echo vm-tick; sleep 0.3; done", check=True, timeout=180)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "(healthy)" not in api.docker("ps", "--format", "{{.Status}}").stdout:
        time.sleep(0.5)
    assert "(healthy)" in api.docker("ps", "--format", "{{.Status}}", check=True).stdout  # probes are execs in the VM
    stats = json.loads(api.docker("stats", "--no-stream", "--format", "{{json .}}", "vmbox", check=True).stdout)
    assert stats["Name"] == "vmbox"
    import os
    import subprocess

    attached = subprocess.Popen([api_server.DOCKER, "attach", "--sig-proxy=false", "vmbox"],
                                env=dict(os.environ, DOCKER_HOST=api.url), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    time.sleep(2)
    plain = api.docker("exec", "vmbox", "sh", "-c", "echo in-guest; exit 3", timeout=60)
    assert (plain.returncode, plain.stdout) == (3, "in-guest\n")
    code, shown = _in_terminal(api, "docker exec -it vmbox sh -c 'tty; exit 2'")
    assert code == 2 and "/dev/" in shown
    assert _exec_resized(api, "vmbox") == (b"44 132\r\n", 0)
    source = tmp_path / "note.txt"
    source.write_text("into the vm\n")
    api.docker("cp", str(source), "vmbox:/tmp/", check=True, timeout=60)
    assert api.docker("exec", "vmbox", "cat", "/tmp/note.txt", check=True).stdout == "into the vm\n"
    api.docker("exec", "vmbox", "sh", "-c", "ln -s / /tmp/up", check=True)
    api.docker("cp", "vmbox:/tmp/note.txt", str(tmp_path / "back.txt"), check=True, timeout=60)
    assert (tmp_path / "back.txt").read_text() == "into the vm\n"
    api.docker("cp", str(source), "vmbox:/tmp/up/root/", check=True, timeout=60)  # the image root's /root
    assert api.docker("exec", "vmbox", "cat", "/root/note.txt", check=True).stdout == "into the vm\n"
    api.docker("stop", "-t", "20", "vmbox", check=True, timeout=60)
    out, _ = attached.communicate(timeout=60)
    assert attached.returncode == 9 and b"vm-tick" in out
    api.docker("rm", "-f", "vmbox", check=True, timeout=120)
    # A detached VM with --rm: the engine (this server) removes it once it exits.
    api.docker("run", "-d", "--rm", "--name", "shortvm", "--isolation", "vm", "--network", "none", "busybox",
               "true", check=True, timeout=180)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "shortvm" in api.docker("ps", "-a", "--format", "{{.Names}}").stdout:
        time.sleep(0.5)
    assert "shortvm" not in api.docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout


def test_run_with_host_settings(api: api_server.ApiServer) -> None:
    shown = api.docker("run", "--rm", "--add-host", "db:10.1.2.3", "--dns", "10.0.0.53", "--ulimit",
                       "nofile=1024:2048", "--shm-size", "128m", "busybox", "sh", "-c",
                       "grep db /etc/hosts; grep nameserver /etc/resolv.conf; ulimit -n; df -m /dev/shm | tail -1",
                       check=True).stdout.splitlines()
    assert shown[0].split() == ["10.1.2.3", "db"] and shown[1] == "nameserver 10.0.0.53" and shown[2] == "1024"
    assert shown[3].split()[1] == "128"


def test_diff_export_and_update(api: api_server.ApiServer, tmp_path: Path) -> None:
    api.docker("run", "-d", "--name", "changed", "-m", "64m", "busybox", "sh", "-c",
               "echo x > /newfile; rm /bin/ls; echo ready; sleep 300", check=True)
    deadline = time.monotonic() + 20
    while "ready" not in api.docker("logs", "changed").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = api.docker("diff", "changed", check=True).stdout.splitlines()
    assert "A /newfile" in lines and "D /bin/ls" in lines
    api.docker("update", "-m", "128m", "--cpus", "0.5", "--pids-limit", "40", "changed", check=True)
    limits = api.docker("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}",
                        "changed", check=True).stdout.split()
    assert limits == [str(128 << 20), "500000000", "40"]
    refused = api.docker("update", "--kernel-memory", "1m", "changed")
    assert refused.returncode != 0 and "KernelMemory" in refused.stderr
    api.docker("export", "-o", str(tmp_path / "fs.tar"), "changed", check=True)
    import tarfile

    with tarfile.open(tmp_path / "fs.tar") as exported:
        names = exported.getnames()
    assert "newfile" in [n.lstrip("./") for n in names] and "bin/ls" not in [n.lstrip("./") for n in names]
    api.docker("rm", "-f", "changed", check=True)
