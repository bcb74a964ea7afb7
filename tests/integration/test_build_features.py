"""`isobox build`, feature by feature: one small context each, built, then run (or inspected), the result
checked. The cache, the refusals, VM builds and the Docker API have files of their own."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import re
import ssl
import tarfile
import threading
from pathlib import Path

import pytest
from tests.integration.build_helpers import build, context, image_document, run
from tests.integration.conftest import Cli

import isobox
from fixtures import registry as registries

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_arg_env_workdir_user_and_cmd(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "ARG BASE=busybox\n"
        "FROM ${BASE}\n"
        "ARG WHO=world\n"
        'ENV GREETING="hello ${WHO}"\n'
        "WORKDIR /srv/app\n"
        'RUN echo "$GREETING" > greeting && echo "app:x:1234:1234::/home/app:/bin/sh" >> /etc/passwd\n'
        "USER app\n"
        "RUN id -u > /tmp/uid\n"
        'CMD ["sh", "-c", "cat greeting /tmp/uid; pwd; id -un"]\n')})
    image, _ = build(cli, ctx)
    assert run(cli, image) == "hello world\n1234\n/srv/app\napp\n"
    other, _ = build(cli, ctx, "--build-arg", "WHO=isobox")
    assert run(cli, other).startswith("hello isobox\n")
    config = image_document(cli, image)["config"]
    assert config["User"] == "app" and config["WorkingDir"] == "/srv/app"
    assert "GREETING=hello world" in config["Env"] and not any(e.startswith("WHO=") for e in config["Env"])


def test_entrypoint_cmd_and_shell(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "FROM busybox\n"
        'ENTRYPOINT ["echo", "entry"]\n'
        'CMD ["from-cmd"]\n')})
    image, _ = build(cli, ctx)
    assert run(cli, image) == "entry from-cmd\n"
    shell = context(tmp_path, {"Dockerfile": (
        "FROM busybox AS base\n"
        'CMD ["inherited"]\n'
        "FROM base\n"
        'SHELL ["/bin/echo", "via-shell"]\n'
        "ENTRYPOINT hello\n")}, name="shell")
    image, _ = build(cli, shell)
    config = image_document(cli, image)["config"]
    assert config["Entrypoint"] == ["/bin/echo", "via-shell", "hello"] and config["Cmd"] is None
    assert run(cli, image) == "via-shell hello\n"


def test_heredocs(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "FROM busybox\n"
        "RUN <<EOF\n"
        "echo one > /one\n"
        "echo two >> /one\n"
        "EOF\n"
        "RUN <<EOF\n"
        "#!/bin/sh\n"
        'echo "script $0" > /two\n'
        "EOF\n"
        "RUN cat <<A > /three\n"
        "from a heredoc\n"
        "A\n"
        "ARG VAR=expanded\n"
        "COPY <<EOF /four.txt\n"
        "inline ${VAR}\n"
        "EOF\n")})
    image, _ = build(cli, ctx)
    assert run(cli, image, "cat", "/one", "/two", "/three", "/four.txt") == (
        "one\ntwo\nscript /dev/pipes/EOF\nfrom a heredoc\ninline expanded\n")
    assert run(cli, image, "sh", "-c", "ls /dev/pipes >/dev/null 2>&1 || echo gone") == "gone\n"


def test_stages_copy_from_target_and_scratch(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "FROM busybox AS base\n"
        "RUN echo base > /base.txt\n"
        "FROM base AS builder\n"
        "RUN echo built > /artifact\n"
        "FROM busybox AS other\n"
        "RUN sleep 1; echo other > /other\n"
        "FROM scratch\n"
        "COPY --from=builder /artifact /artifact\n"
        "COPY --from=base /bin/busybox /bin/busybox\n"
        "COPY --from=other /other /other\n"
        'CMD ["/bin/busybox", "cat", "/artifact", "/other"]\n')})
    image, progress = build(cli, ctx)
    assert run(cli, image) == "built\nother\n"
    assert len(image_document(cli, image)["rootfs"]["diff_ids"]) == 3
    # base and other build side by side: the second RUN starts before the first is done
    assert progress.index("running in", progress.index("running in") + 1) < progress.index("#6 DONE")
    target, _ = build(cli, ctx, "--target", "builder")
    assert run(cli, target, "cat", "/base.txt", "/artifact") == "base\nbuilt\n"


def test_copy_rules(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {
        "a.txt": "a\n", "b.txt": "b\n", "dir/sub/c.txt": "c\n", "exec.sh": "#!/bin/sh\necho run\n",
        "Dockerfile": (
            "FROM busybox\n"
            "COPY a.txt /single\n"
            "COPY *.txt /globbed/\n"
            "COPY dir /copied-dir\n"
            "COPY --chown=1000:2000 --chmod=640 a.txt /owned/a.txt\n"
            "WORKDIR /work\n"
            "COPY exec.sh b.txt ./\n"
            "COPY --parents dir/sub/c.txt /parents/\n"
            "COPY --exclude=b.txt *.txt /excluded/\n"),
    })
    (ctx / "exec.sh").chmod(0o755)
    (ctx / "dir" / "link").symlink_to("sub/c.txt")
    image, _ = build(cli, ctx)
    out = run(cli, image, "sh", "-c", "cat /single; ls /globbed; find /copied-dir | sort; readlink /copied-dir/link; "
              "stat -c '%u %g %a' /owned/a.txt; stat -c %a /work/exec.sh; ls /work; cat /parents/dir/sub/c.txt; "
              "ls /excluded; stat -c %a /tmp")
    assert out.splitlines() == [
        "a", "a.txt", "b.txt", "/copied-dir", "/copied-dir/link", "/copied-dir/sub", "/copied-dir/sub/c.txt",
        "sub/c.txt", "1000 2000 640", "755", "b.txt", "exec.sh", "c", "a.txt", "1777"]


def test_dockerignore_and_named_dockerfile(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {
        "keep.txt": "k", "secret.env": "S", "logs/a.log": "a", "logs/important.log": "i",
        ".dockerignore": "*.env\nlogs\n!logs/important.log\n",
        "Dockerfile": "FROM busybox\nCOPY . /ctx\n",
        "build/app.Dockerfile": "FROM busybox\nCOPY . /ctx\n",
        "build/app.Dockerfile.dockerignore": "keep.txt\n",
    })
    image, _ = build(cli, ctx)
    listed = run(cli, image, "find", "/ctx", "-type", "f").split()
    assert sorted(listed) == ["/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/build/app.Dockerfile",
                              "/ctx/build/app.Dockerfile.dockerignore", "/ctx/keep.txt", "/ctx/logs/important.log"]
    named, _ = build(cli, ctx, "-f", str(ctx / "build" / "app.Dockerfile"))
    listed = run(cli, named, "find", "/ctx", "-type", "f").split()
    assert "/ctx/keep.txt" not in listed and "/ctx/secret.env" in listed and "/ctx/logs/a.log" in listed


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o640, 7, 8
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_add_extracts_a_local_archive(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {
        "app.tar.gz": _tar_gz({"bin/tool": b"tool\n", "etc/conf": b"conf\n"}),
        "plain.gz": b"\x1f\x8b not really gzip",
        "Dockerfile": "FROM busybox\nADD app.tar.gz /opt/app\nADD plain.gz /opt/\nCOPY app.tar.gz /kept/\n",
    })
    image, _ = build(cli, ctx)
    out = run(cli, image, "sh", "-c", "cat /opt/app/bin/tool /opt/app/etc/conf; stat -c '%u %g %a' /opt/app/etc/conf;"
              " ls /opt; ls /kept")
    assert out.splitlines() == ["tool", "conf", "7 8 640", "app", "plain.gz", "app.tar.gz"]


def test_run_mounts(cli: Cli, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret-value")
    ctx = context(tmp_path, {"data/x": "from the context\n", "Dockerfile": (
        "FROM busybox\n"
        "RUN --mount=type=cache,target=/cache sh -c 'echo run >> /cache/log; wc -l < /cache/log > /cache-count'\n"
        "RUN --mount=type=bind,source=data,target=/mnt cat /mnt/x > /bound\n"
        "RUN --mount=type=bind,source=data,target=/mnt,rw sh -c 'echo changed > /mnt/x; cat /mnt/x > /rw'\n"
        "RUN --mount=type=tmpfs,target=/scratch sh -c 'touch /scratch/gone; grep -c \" /scratch tmpfs \" /proc/mounts"
        " > /tmpfs-count'\n"
        "RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-length\n")})
    image, _ = build(cli, ctx, "--secret", f"id=tok,src={secret}")
    out = run(cli, image, "sh", "-c", "cat /cache-count /bound /rw /tmpfs-count /secret-length; ls /scratch /mnt; "
              "ls /run/secrets 2>&1 || true")
    lines = out.splitlines()
    assert lines[:5] == ["1", "from the context", "changed", "1", "12"], out
    assert "secrets" not in out.replace("/run/secrets: No such file or directory", "")
    assert (ctx / "data" / "x").read_text() == "from the context\n"  # a rw bind mount's changes are dropped
    again, _ = build(cli, ctx, "--no-cache", "--secret", f"id=tok,src={secret}")
    assert run(cli, again, "cat", "/cache-count") == "2\n"  # the cache mount outlived the first build
    layers = Path(cli.root) / "lib" / "layers"
    assert not [p for p in layers.rglob("*") if p.is_file() and b"s3cret-value" in p.read_bytes()]


def test_config_instructions_and_onbuild(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "FROM busybox\n"
        'LABEL org.example.team="build team" version=1\n'
        "EXPOSE 80 8000-8001/udp\n"
        "VOLUME /data\n"
        "STOPSIGNAL SIGUSR1\n"
        "HEALTHCHECK --interval=5s --retries=2 CMD true\n"
        "MAINTAINER someone@example.org\n"
        "ONBUILD RUN echo triggered > /onbuild\n")})
    parent, _ = build(cli, ctx, "-t", "localhost/parent:1", "--label", "version=2")
    document = image_document(cli, parent)
    config = document["config"]
    assert config["Labels"]["org.example.team"] == "build team" and config["Labels"]["version"] == "2"
    assert set(config["ExposedPorts"]) == {"80/tcp", "8000/udp", "8001/udp"}
    assert config["Volumes"] == {"/data": {}} and config["StopSignal"] == "SIGUSR1"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}
    assert config["OnBuild"] == ["RUN echo triggered > /onbuild"] and document["author"] == "someone@example.org"
    child = context(tmp_path, {"Dockerfile": "FROM localhost/parent:1\nRUN cat /onbuild\n"}, name="child")
    image, progress = build(cli, child)
    assert "#2 [2/3] RUN echo triggered" in progress and "#3 triggered" in progress
    assert run(cli, image, "cat", "/onbuild") == "triggered\n"
    assert not image_document(cli, image)["config"].get("OnBuild")


def test_context_and_dockerfile_from_stdin(cli: Cli, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in {"Dockerfile": b"FROM busybox\nCOPY in.txt /in.txt\n", "in.txt": b"from a tar\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    image, _ = build(cli, "-", input=buffer.getvalue())
    assert run(cli, image, "cat", "/in.txt") == "from a tar\n"
    plain, _ = build(cli, "-", input=b"FROM busybox\nRUN echo lone > /lone\n")
    assert run(cli, plain, "cat", "/lone") == "lone\n"
    ctx = context(tmp_path, {"f.txt": "f\n"})
    piped, _ = build(cli, ctx, "-f", "-", input=b"FROM busybox\nCOPY f.txt /\n")
    assert run(cli, piped, "cat", "/f.txt") == "f\n"


def test_source_date_epoch_makes_the_same_image(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"f.txt": "f\n", "Dockerfile": (
        "FROM busybox\nCOPY f.txt /f.txt\nRUN echo built > /built; mkdir -p /var/cache/x\nENV DONE=1\n")})
    first, _ = build(cli, ctx, "--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    (ctx / "f.txt").touch()
    second, _ = build(cli, ctx, "--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    assert first == second
    document = image_document(cli, first)
    assert document["created"] == "2023-11-14T22:13:20Z"
    assert {entry["created"] for entry in document["history"][1:]} == {"2023-11-14T22:13:20Z"}
    assert run(cli, first, "stat", "-c", "%Y", "/built") == "1700000000\n"
    other, _ = build(cli, ctx, "--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000001")
    assert other != first


def test_networks(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "FROM busybox\n"
        "RUN grep -c : /proc/net/dev > /default-net\n"
        "RUN --network=none grep -c : /proc/net/dev > /none-net\n")})
    image, _ = build(cli, ctx)
    assert run(cli, image, "cat", "/default-net", "/none-net") == "2\n1\n"  # lo and eth0; lo alone
    isolated, _ = build(cli, ctx, "--no-cache", "--network", "none")
    assert run(cli, isolated, "cat", "/default-net") == "1\n"


def test_quiet_prints_the_id_only(cli: Cli, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo noisy\n"})
    done = cli("build", "-q", "-t", "quiet:1", "-t", "quiet:2", str(ctx), check=True)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", done.stdout) and "noisy" not in done.stderr
    listed = cli("images", check=True).stdout
    assert "quiet" in listed and done.stdout[7:19] in listed


def test_python_api(isobox_root: Path, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nARG N=0\nRUN echo $N > /n\n"})
    events: list[isobox.BuildEvent] = []
    result = isobox.build(ctx, tags=["localhost/api-built:1"], build_args={"N": "7"}, progress=events.append,
                          root=str(isobox_root))
    assert result.image_id.startswith("sha256:") and result.tags == ("localhost/api-built:1",)
    assert [event.text for event in events if event.kind.value == "output"] == []
    assert isobox.run("localhost/api-built:1", "cat /n", remove=True, root=str(isobox_root)).stdout == b"7\n"
    again = isobox.build(ctx, build_args={"N": "7"}, root=str(isobox_root))
    assert again.image_id == result.image_id and again.cached_steps == 1
    assert isobox.builder_prune(root=str(isobox_root)) >= 0
    assert isobox.build(ctx, build_args={"N": "7"}, root=str(isobox_root)).cached_steps == 0


class _Files(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:
        _Files.requests.append(self.path)


def test_add_downloads_over_https_with_checksum(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    certs = registries.make_certs(tmp_path / "certs")
    served = tmp_path / "served"
    served.mkdir()
    body = b"#!/bin/sh\necho downloaded\n"
    (served / "tool.sh").write_bytes(body)
    os.utime(served / "tool.sh", (1600000000, 1600000000))
    handler = functools.partial(_Files, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certs.server_cert, certs.server_key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ISOBOX_CA", str(certs.ca_cert))
    url = f"https://127.0.0.1:{server.server_address[1]}/tool.sh"
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    try:
        ctx = context(tmp_path, {"Dockerfile": (
            f"FROM busybox\nADD --checksum={digest} {url} /opt/tool.sh\nADD {url} /dl/\n")})
        image, _ = build(cli, ctx)
        assert run(cli, image, "sh", "-c", "sh /opt/tool.sh; stat -c '%a %Y' /opt/tool.sh; ls /dl") == (
            "downloaded\n600 1600000000\ntool.sh\n")
        _Files.requests.clear()
        again, _ = build(cli, ctx)
        assert again == image and len(_Files.requests) == 1  # with a checksum, a cached ADD downloads nothing
        (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url} /opt/tool.sh\n")
        _, stderr = build(cli, ctx, check=False)
        assert "Dockerfile:2" in stderr and f"--checksum says sha256:{'0' * 64}" in stderr
    finally:
        server.shutdown()
        server.server_close()
