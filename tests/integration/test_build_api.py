"""POST /build through real clients: the docker CLI's classic builder (DOCKER_BUILDKIT=0) and docker-py's
``images.build``, with tags, build args, labels, a named Dockerfile, the cache, a failing step, and
POST /build/prune."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from tests.integration.build_helpers import context
from tests.integration.conftest import Cli

from fixtures import api_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def api(cli: object, isobox_root: Path) -> Iterator[api_server.ApiServer]:
    server = api_server.start(isobox_root)
    try:
        yield server
    finally:
        server.stop()


def _docker_build(api: api_server.ApiServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DOCKER_HOST=api.url, DOCKER_BUILDKIT="0")
    return subprocess.run([api_server.DOCKER, "build", *args], env=env, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


def test_docker_cli_builds_through_the_api(api: api_server.ApiServer, cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"msg.txt": "hello\n", "sub/build.Dockerfile": (
        "FROM busybox\n"
        "ARG WHO=nobody\n"
        "COPY msg.txt /msg.txt\n"
        'RUN echo "for $WHO" >> /msg.txt && cat /msg.txt\n'
        'CMD ["cat", "/msg.txt"]\n')})
    dockerfile = str(ctx / "sub" / "build.Dockerfile")  # as docker's -f: relative to the current directory
    done = _docker_build(api, "-t", "cli-built:1", "-t", "cli-built:2", "-f", dockerfile,
                         "--build-arg", "WHO=docker", "--label", "made.by=docker-cli", str(ctx))
    assert done.returncode == 0, done.stderr
    assert "Step 4/5 : RUN" in done.stdout and "for docker" in done.stdout
    assert "Successfully built " in done.stdout and "Successfully tagged cli-built:2" in done.stdout
    assert cli("run", "--rm", "cli-built:1", check=True).stdout == "hello\nfor docker\n"
    label = api.docker("image", "inspect", "-f", "{{index .Config.Labels \"made.by\"}}", "cli-built:1", check=True)
    assert label.stdout.strip() == "docker-cli"
    again = _docker_build(api, "-q", "-f", dockerfile, "--build-arg", "WHO=docker", "--label", "made.by=docker-cli",
                          str(ctx))
    image_id = api.docker("image", "inspect", "-f", "{{.Id}}", "cli-built:1", check=True).stdout.strip()
    assert again.returncode == 0 and again.stdout.strip() == image_id
    failing = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo before-failing; exit 4\n"}, name="failing")
    failed = _docker_build(api, "-t", "never:1", str(failing))
    assert failed.returncode != 0 and "exited with code 4" in failed.stderr and "before-failing" in failed.stdout
    assert api.docker("image", "inspect", "never:1").returncode != 0


def test_docker_py_images_build(api: api_server.ApiServer, tmp_path: Path) -> None:
    client = docker.DockerClient(base_url=api.url, version="auto")
    try:
        ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nARG N=1\nRUN echo $N > /n\nLABEL kind=py\n"})
        image, logs = client.images.build(path=str(ctx), tag="py-built:1", buildargs={"N": "5"})
        assert "py-built:1" in image.tags and image.labels == {"kind": "py", "org.isobox.builtin": "true"}
        assert any("Successfully built" in entry.get("stream", "") for entry in logs)
        container = client.containers.run("py-built:1", ["cat", "/n"], detach=True)
        assert container.wait()["StatusCode"] == 0 and container.logs() == b"5\n"
        container.remove()
        with open(ctx / "Dockerfile", "rb") as dockerfile:  # a lone Dockerfile as the body
            lone, _ = client.images.build(fileobj=dockerfile, tag="py-lone:1")
        assert "py-lone:1" in lone.tags and lone.id != image.id  # N keeps its default there
        bad = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN exit 2\n"}, name="bad")
        with pytest.raises(docker.errors.BuildError, match="exited with code 2"):
            client.images.build(path=str(bad))
        with pytest.raises((docker.errors.BuildError, docker.errors.APIError), match="unknown instruction"):
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nWHAT now\n"))
        pruned = client.api.prune_builds()
        assert pruned["SpaceReclaimed"] >= 0
        _, logs = client.images.build(path=str(ctx), buildargs={"N": "5"})
        assert not any("Using cache" in entry.get("stream", "") for entry in logs)
    finally:
        client.close()


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_client_that_goes_away_interrupts_the_build(api: api_server.ApiServer, cli: Cli) -> None:
    body = _tar({"Dockerfile": b"FROM busybox\nRUN echo started; sleep 60\n"})
    with api.http() as client, client.stream("POST", "/build?t=gone:1", content=body,
                                             headers={"Content-Type": "application/x-tar"}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if "started" in line:
                break
    deadline = time.monotonic() + 60
    while cli("ps", "-a", "-q").stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert cli("ps", "-a", "-q").stdout == "", api.log.read_text()[-3000:]
    assert "gone" not in cli("images", check=True).stdout
