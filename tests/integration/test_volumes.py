"""Volumes, bind mounts and tmpfs with real containers: persistence, read-only, copy-up, cleanup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


def test_named_volume_outlives_workloads(cli: Cli) -> None:
    cli("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f", check=True)
    assert cli("run", "--rm", "-v", "data:/data", "busybox", "cat", "/data/f").stdout == "kept\n"
    assert [v["name"] for v in json.loads(cli("volume", "ls", "--json").stdout)] == ["data"]


def test_read_only_volume_refuses_writes(cli: Cli) -> None:
    done = cli("run", "--rm", "-v", "ro:/data:ro", "busybox", "sh", "-c", "echo x > /data/f")
    assert done.returncode != 0 and "Read-only file system" in done.stderr


def test_volume_in_use_cannot_be_removed(cli: Cli) -> None:
    cli("run", "-d", "--name", "user", "-v", "busy:/data", "busybox", "sleep", "60", check=True)
    done = cli("volume", "rm", "busy")
    assert done.returncode == 125 and "in use by user" in done.stderr
    cli("rm", "-f", "user", check=True)
    cli("volume", "rm", "busy", check=True)


def test_copy_up_from_image_on_first_use(cli: Cli) -> None:
    assert "passwd" in cli("run", "--rm", "-v", "etc:/etc", "busybox", "ls", "/etc").stdout


def test_bind_mount_and_tmpfs(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "in").write_text("from host")
    done = cli(
        "run",
        "--rm",
        "-v",
        f"{tmp_path}:/host",
        "--tmpfs",
        "/scratch:size=1m",
        "busybox",
        "sh",
        "-c",
        "cat /host/in; echo back > /host/out; grep -c ' /scratch tmpfs' /proc/mounts",
    )
    assert done.stdout == "from host1\n", done.stderr  # the host file has no newline
    assert (tmp_path / "out").read_text() == "back\n"
    done = cli("run", "--rm", "-v", "/does/not/exist:/x", "busybox", "true")
    assert done.returncode == 125 and "does not exist" in done.stderr


def test_anonymous_volume_removed_with_rm_v(cli: Cli) -> None:
    cli("run", "--name", "anon", "-v", "/cache", "busybox", "true", check=True)
    assert len(json.loads(cli("volume", "ls", "--json").stdout)) == 1
    cli("rm", "-v", "anon", check=True)
    assert json.loads(cli("volume", "ls", "--json").stdout) == []
