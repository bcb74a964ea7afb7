"""The image commands of the `isobox` CLI, end to end against a real registry."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures import registry as registries
from fixtures.registry_images import seed

pytestmark = pytest.mark.integration


@dataclass
class Cli:
    """`isobox` with a private root. (Image commands start no workloads, so no leak checks are needed.)"""

    root: Path

    def __call__(self, *args: str, input: bytes | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, ISOBOX_ROOT=str(self.root))
        done = subprocess.run([sys.executable, "-m", "isobox.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=60, input=input.decode() if input is not None else "")
        if check and done.returncode != 0:
            raise AssertionError(f"isobox {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done


@pytest.fixture
def cli(isobox_root: Path) -> Cli:
    return Cli(isobox_root)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    work = tmp_path_factory.mktemp("cli-registry")
    server = registries.start(work, htpasswd=registries.htpasswd_file(work))
    try:
        seed(server, "multi", "lib/multi:1", creds=f"{registries.USER}:{registries.PASSWORD}")
        yield server
    finally:
        server.stop()


def test_login_pull_images_tag_history_push_rmi(cli: Cli, registry: registries.Registry, isobox_root: Path) -> None:
    name = f"{registry.host}/lib/multi:1"
    denied = cli("pull", "--insecure", name)
    assert denied.returncode == 125 and "isobox login" in denied.stderr
    bad = cli("login", "-u", registries.USER, "--password-stdin", "--insecure", registry.host, input=b"nope\n")
    assert bad.returncode == 125 and "401" in bad.stderr
    cli("login", "-u", registries.USER, "--password-stdin", "--insecure", registry.host,
        input=f"{registries.PASSWORD}\n".encode(), check=True)
    assert stat.S_IMODE((isobox_root / "lib/auth.json").stat().st_mode) == 0o600

    pulled = json.loads(cli("pull", "--insecure", "--json", name, check=True).stdout)
    assert len(pulled["layers"]) == 3
    assert cli("pull", "--insecure", "-q", name, check=True).stdout.strip() == pulled["id"]

    cli("tag", name, "example.com/team/multi:v2", check=True)
    table = cli("images", check=True).stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = [line.split() for line in table[1:]]
    short = pulled["id"].split(":")[1][:12]
    assert [f"{registry.host}/lib/multi", "1", short] in [r[:3] for r in rows]
    assert ["example.com/team/multi", "v2", short] in [r[:3] for r in rows]
    listed = json.loads(cli("images", "--json", check=True).stdout)
    assert listed[0]["names"] == sorted([name, "example.com/team/multi:v2"])

    inspected = json.loads(cli("image", "inspect", "example.com/team/multi:v2", check=True).stdout)
    assert inspected[0]["Id"] == pulled["id"] and inspected[0]["Config"]["Cmd"] == ["sh"]
    history = json.loads(cli("image", "history", "--json", name, check=True).stdout)
    assert len(history) >= 3

    pushed = cli("push", "--insecure", name, f"{registry.host}/copy/multi:1", check=True)
    assert pulled["id"] not in pushed.stdout and "digest sha256:" in pushed.stdout

    untag = cli("rmi", "example.com/team/multi:v2", check=True).stdout
    assert "Untagged: example.com/team/multi:v2" in untag
    removed = cli("rmi", name, check=True).stdout
    assert f"Deleted: {pulled['id']}" in removed
    assert json.loads(cli("images", "--json", check=True).stdout) == []
    assert list((isobox_root / "lib/layers").iterdir()) == []
    assert cli("logout", registry.host, check=True).stdout.startswith("Removed")


def test_save_load_and_prune(cli: Cli, tmp_path: Path, isobox_root: Path) -> None:
    cli("system", "setup-builtin", check=True)
    archive = tmp_path / "busybox.tar"
    cli("save", "-o", str(archive), "--format", "oci", "busybox", check=True)
    cli("rmi", "busybox", check=True)
    loaded = cli("load", "-i", str(archive), check=True).stdout
    assert "docker.io/library/busybox:latest" in loaded
    (isobox_root / "lib/tmp/partial-sha256-" f"{'0' * 64}").write_bytes(b"stale")
    pruned = json.loads(cli("image", "prune", "-f", "--json", check=True).stdout)
    assert pruned["partials_removed"] == 1
    bad = cli("save", "-o", str(archive), "--format", "zip", "busybox")
    assert bad.returncode == 125 and "unknown archive format" in bad.stderr
    missing = cli("image", "inspect", "nosuch:image")
    assert missing.returncode == 1 and "No such image: nosuch:image" in missing.stderr
