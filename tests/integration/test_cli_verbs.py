"""Docker's verbs and scripting options on real containers, through the isobox command: listings with --filter,
--format and --no-trunc, inspect -f, cp in both directions, diff, export, update, rename, port, stats (one table
and the live one), rm of several names, the prune question, save | load, relative binds, the pull message."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from tests.integration.conftest import ISOBOX, Cli

pytestmark = pytest.mark.integration


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_listings_filter_format_and_ids(cli: Cli) -> None:
    cli("run", "-d", "--name", "web", "-l", "role=front", "-p", "127.0.0.1::80", "busybox", "sleep", "60", check=True)
    cli("run", "--name", "job", "busybox", "sh", "-c", "exit 3")
    cli("create", "--name", "later", "busybox", "true", check=True)
    table = cli("ps", "-a", check=True).stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "KIND", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(table[1].split()[0]) == 12 and "…" not in "".join(table)  # 12-character ids, no cut cells
    assert "127.0.0.1:" in table[-1] and "->80/tcp" in table[-1] and "Up " in table[-1]
    assert cli("ps", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}").stdout.startswith(
        "job Exited (3) ")
    assert lines(cli("ps", "-a", "--filter", "label=role=front", "-q").stdout) == [table[-1].split()[0]]
    assert lines(cli("ps", "-a", "--filter", "name=^l", "--format", "{{.Names}}").stdout) == ["later"]
    assert lines(cli("ps", "-l", "--format", "{{.Names}}").stdout) == ["later"]
    assert lines(cli("ps", "-n", "2", "--format", "{{.Names}}").stdout) == ["later", "job"]
    full = lines(cli("ps", "--no-trunc", "-q").stdout)
    assert len(full) == 1 and len(full[0]) == 64
    custom = cli("ps", "-a", "--format", "table {{.Names}}\t{{.State}}").stdout.splitlines()
    assert custom[0].split() == ["NAMES", "STATE"] and sorted(r.split()[1] for r in custom[1:]) == [
        "created", "exited", "running"]
    assert json.loads(lines(cli("ps", "--format", "json").stdout)[0])["Names"] == "web"
    sized = cli("ps", "-s", check=True).stdout.splitlines()
    assert sized[0].split()[-1] == "SIZE" and "(virtual " in sized[1]
    bad = cli("ps", "--filter", "colour=red")
    assert bad.returncode == 125 and "invalid filter 'colour'" in bad.stderr

    assert cli("inspect", "-f", "{{.State.Status}} {{.Config.Labels.role}} {{.Name}}", "web").stdout == \
        "running front /web\n"
    assert cli("inspect", "-f", "{{json .State.ExitCode}}", "job").stdout == "3\n"
    assert cli("inspect", "--type", "image", "-f", "{{index .RepoTags 0}}", "busybox").stdout == "busybox:latest\n"
    missing = cli("inspect", "web", "nosuch")
    assert missing.returncode == 1 and json.loads(missing.stdout)[0]["Name"] == "/web"
    assert "No such object: nosuch" in missing.stderr

    network_ids = lines(cli("network", "ls", "-q").stdout)
    network = json.loads(cli("network", "inspect", "isobox", check=True).stdout)[0]
    assert network_ids == [network["Id"][:12]]  # ids, not names
    assert lines(cli("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout) == ["isobox bridge"]
    assert cli("images", "--filter", "reference=busybox", "--format", "{{.Repository}}:{{.Tag}}").stdout == \
        "busybox:latest\n"
    assert cli("images", "--filter", "dangling=true", "-q").stdout == ""


def test_cp_both_ways_through_symlinks_and_volumes(cli: Cli, tmp_path: Path) -> None:
    cli("run", "-d", "--name", "box", "-v", "vol:/vol", "busybox", "sleep", "60", check=True)
    # An image or a workload may plant symlinks pointing out of the container: they resolve inside it.
    cli("exec", "box", "sh", "-c", "mkdir -p /d/sub && echo one > /d/sub/f && ln -s / /escape && "
        "echo in-volume > /vol/v", check=True)
    cli("cp", "box:/d", str(tmp_path), check=True)
    assert (tmp_path / "d" / "sub" / "f").read_text() == "one\n"
    cli("cp", "box:/d/.", str(tmp_path / "content"), check=True)
    assert (tmp_path / "content" / "sub" / "f").read_text() == "one\n"
    cli("cp", "box:/vol/v", str(tmp_path / "from-volume"), check=True)
    assert (tmp_path / "from-volume").read_text() == "in-volume\n"

    (tmp_path / "upload").write_text("two\n")
    cli("cp", str(tmp_path / "upload"), "box:/escape/tmp/", check=True)  # /escape is / inside the container
    assert cli("exec", "box", "cat", "/tmp/upload").stdout == "two\n"
    assert not Path("/tmp/upload").exists() or Path("/tmp/upload").read_text() != "two\n"
    assert cli("exec", "box", "stat", "-c", "%u", "/tmp/upload").stdout == "0\n"  # the container's root
    cli("cp", str(tmp_path / "upload"), "box:/vol/renamed", check=True)
    assert cli("exec", "box", "cat", "/vol/renamed").stdout == "two\n"

    archive = subprocess.run([*ISOBOX, "cp", "box:/d", "-"], capture_output=True, check=True,
                             env=dict(os.environ, ISOBOX_ROOT=str(cli.root))).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert sorted(tar.getnames()) == ["d", "d/sub", "d/sub/f"]
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        info = tarfile.TarInfo("streamed")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"tar\n"))
    cli("cp", "-", "box:/tmp", input=packed.getvalue().decode("latin-1").encode("latin-1"), check=True)
    assert cli("exec", "box", "cat", "/tmp/streamed").stdout == "tar\n"
    missing = cli("cp", "box:/nope", str(tmp_path))
    assert missing.returncode == 125 and "no such file or directory in the container: /nope" in missing.stderr
    assert cli("ps", "--format", "{{.Status}}").stdout.startswith("Up ")  # frozen only while copying


def test_diff_and_export(cli: Cli) -> None:
    cli("run", "--name", "changed", "busybox", "sh", "-c", "echo x > /etc/new; rm /bin/vi; mkdir -p /data/a",
        check=True)
    changes = lines(cli("diff", "changed", check=True).stdout)
    for line in ("C /etc", "A /etc/new", "C /bin", "D /bin/vi", "A /data", "A /data/a"):
        assert line in changes
    assert not any(line.endswith(("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")) for line in changes)
    exported = subprocess.run([*ISOBOX, "export", "changed"], capture_output=True, check=True,
                              env=dict(os.environ, ISOBOX_ROOT=str(cli.root))).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        names = set(tar.getnames())
        assert {"etc/new", "bin/sh", "data/a"} <= names and "bin/vi" not in names
        member = tar.extractfile("etc/new")
        assert member is not None and member.read() == b"x\n"


def test_update_rename_port_and_stats(cli: Cli) -> None:
    cli("run", "-d", "--name", "svc", "--memory", "64m", "-p", "127.0.0.1::8080", "busybox", "sleep", "60",
        check=True)
    workload_id = cli("inspect", "-f", "{{.Id}}", "svc").stdout.strip()
    cli("update", "--memory", "96m", "--cpus", "0.5", "--pids-limit", "40", "--restart", "on-failure:2", "svc",
        check=True)
    memory = Path(f"/sys/fs/cgroup/memory/isobox/{workload_id}/memory.limit_in_bytes")
    if memory.exists():  # cgroup v1 (this host)
        assert memory.read_text().strip() == str(96 << 20)
        assert Path(f"/sys/fs/cgroup/pids/isobox/{workload_id}/pids.max").read_text().strip() == "40"
    assert cli("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}",
               "svc").stdout == f"{96 << 20} 500000000 on-failure\n"
    nothing = cli("update", "svc")
    assert nothing.returncode == 125 and "say what to change" in nothing.stderr

    cli("rename", "svc", "renamed", check=True)
    assert cli("ps", "--format", "{{.Names}}").stdout == "renamed\n"
    mapping = cli("port", "renamed", check=True).stdout
    assert mapping.startswith("8080/tcp -> 127.0.0.1:")
    assert cli("port", "renamed", "8080").stdout == mapping.split(" -> ")[1]
    assert cli("port", "renamed", "9999").returncode == 125

    cli("exec", "renamed", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done", check=True)
    one = cli("stats", "--no-stream", "renamed", check=True).stdout.splitlines()
    assert one[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"] and "NET I/O" in one[0] and "BLOCK I/O" in one[0]
    assert "/ 96MiB" in one[1] and one[1].split()[-1] == "1"
    sample = json.loads(cli("stats", "--json", "renamed", check=True).stdout)[0]
    assert sample["memory_limit_bytes"] == 96 << 20 and sample["net_rx_bytes"] >= 0
    live = subprocess.Popen([*ISOBOX, "stats", "renamed"], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, ISOBOX_ROOT=str(cli.root)))
    time.sleep(3.5)
    live.send_signal(signal.SIGINT)
    out, _ = live.communicate(timeout=20)
    assert live.returncode == 0 and out.count("CONTAINER ID") >= 2  # refreshed, until ^C


def test_rm_of_several_names_goes_on_past_a_missing_one(cli: Cli) -> None:
    for name in ("a", "b"):
        cli("create", "--name", name, "busybox", "true", check=True)
    done = cli("rm", "a", "missing", "b")
    assert done.returncode == 1
    assert lines(done.stdout) == ["a", "b"] and "missing" in done.stderr
    assert cli("ps", "-aq").stdout == ""


def test_prune_asks_and_save_load_stream(cli: Cli, tmp_path: Path) -> None:
    cli("run", "--name", "old", "busybox", "true", check=True)
    declined = cli("system", "prune", input=b"n\n")
    assert declined.returncode == 0 and "[y/N]" in declined.stderr and "all stopped workloads" in declined.stderr
    assert cli("ps", "-aq").stdout != ""
    accepted = cli("system", "prune", "-a", "--volumes", input=b"y\n", check=True)
    assert "Deleted Workloads:\nold\n" in accepted.stdout and cli("ps", "-aq").stdout == ""

    env = dict(os.environ, ISOBOX_ROOT=str(cli.root))
    cli("system", "setup-builtin", check=True)
    saved = subprocess.run(f"{' '.join(ISOBOX)} save busybox > {tmp_path / 'b.tar'}", shell=True, env=env,
                           capture_output=True, text=True)
    assert saved.returncode == 0, saved.stderr
    with tarfile.open(tmp_path / "b.tar") as tar:
        assert "manifest.json" in tar.getnames()
    cli("rmi", "busybox", check=True)
    loaded = subprocess.run(f"{' '.join(ISOBOX)} load < {tmp_path / 'b.tar'}", shell=True, env=env,
                            capture_output=True, text=True)
    assert loaded.returncode == 0 and "Loaded image: " in loaded.stdout, loaded.stderr


def test_relative_bind_and_missing_image_message(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "f").write_text("relative\n")
    search = os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    done = subprocess.run([*ISOBOX, "run", "--rm", "-v", "./here:/p", "busybox", "cat", "/p/f"], cwd=tmp_path,
                          capture_output=True, text=True,
                          env=dict(os.environ, ISOBOX_ROOT=str(cli.root), PYTHONPATH=search))
    assert (done.returncode, done.stdout) == (0, "relative\n"), done.stderr
    assert cli("volume", "ls", "-q").stdout == ""  # a path, not a volume named "./here"
    missing = cli("run", "--rm", "127.0.0.1:1/nothing/here:1", "true")
    assert missing.returncode == 125
    assert missing.stderr.startswith("Unable to find image '127.0.0.1:1/nothing/here:1' locally\n")
    assert "connection refused to 127.0.0.1:1" in missing.stderr and "Errno" not in missing.stderr
    never = cli("run", "--rm", "--pull", "never", "127.0.0.1:1/nothing/here:1", "true")
    assert never.returncode == 125 and "Unable to find" not in never.stderr
