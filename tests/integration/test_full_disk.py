"""A full disk that isobox survives: a state root on a small ext4 file system (a loop-mounted image, no blocks
reserved for root) is filled by run, commit, load, pull and logs; every one of them ends, with a clear
error naming the file system when it cannot do its work (never a traceback, never a hang, never blaming
an input file), and isobox's own `rm -f`, `rmi` and `system prune` give the space back on the full disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import Cli
from tests.leaks import cgroup_ids, mounts_under

from fixtures import registry as registries
from fixtures.registry_images import seed

pytestmark = pytest.mark.integration

DISK_MIB = 320
TIMEOUT_S = 180  # every command must end well within this: no wait is unbounded
YES = b"y\n"  # prunes may ask for confirmation: the answer is given on stdin


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("registry"))
    try:
        seed(server, "busybox", "lib/busybox:1")
        seed(server, "multi", "lib/multi:1")
        yield server
    finally:
        server.stop()


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    base = Path(tempfile.mkdtemp(prefix="isobox-full-", dir="/var/tmp"))
    image, mount = base / "disk.img", base / "mnt"
    mount.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(DISK_MIB * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    root = mount / "root"
    root.mkdir()
    monkeypatch.setenv("ISOBOX_ROOT", str(root))
    cli = Cli(root)
    try:
        yield cli
    finally:
        _free_by_hand(cli)
        for workload in (root / "lib" / "workloads").iterdir():
            cli("rm", "-f", workload.name, timeout=TIMEOUT_S)
        cli("network", "prune", input=YES)
        leaked_mounts = mounts_under(root)
        leaked_cgroups = cgroup_ids(cli.seen)
        subprocess.run(["umount", str(mount)], check=False)
        shutil.rmtree(base, ignore_errors=True)
        assert leaked_mounts == [] and not leaked_cgroups, (leaked_mounts, leaked_cgroups)


def _free_by_hand(cli: Cli) -> None:
    """Whatever happened in the test, its teardown must be able to remove everything: the test's own big
    files go first (so a failure of isobox on the full disk leaks nothing into the machine)."""
    for workload in (cli.root / "lib" / "workloads").iterdir():
        for name in ("fill", "rest", "after-reads", "after-commit", "after-pull", "before-rm", "filler1",
                     "filler2"):
            (workload / "upper" / name).unlink(missing_ok=True)
        log = workload / "output.log"
        if log.exists():
            log.write_bytes(b"")


def free_bytes(cli: Cli) -> int:
    stat = os.statvfs(cli.root)
    return stat.f_bavail * stat.f_frsize


def clear(done: subprocess.CompletedProcess[str], mount: str) -> None:
    """Failed as a user can understand: isobox's own message naming the full file system."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("isobox: ") and "full" in last and mount in last, done.stderr


def fill(cli: Cli, name: str) -> subprocess.CompletedProcess[str]:
    """A foreground workload writing until the disk is full (big blocks, then small ones for the rest). On
    its way out isobox takes back its reserve to record the exit: `top_up` takes that too."""
    done = cli("run", "--name", name, "busybox", "sh", "-c",
               "dd if=/dev/zero of=/fill bs=1M; dd if=/dev/zero of=/rest bs=4k; sync; echo filled",
               timeout=TIMEOUT_S)
    assert "Traceback" not in done.stderr, done.stderr
    top_up(cli, name)
    return done


def top_up(cli: Cli, tag: str) -> None:
    """Fill what is free again through `exec` into the running "hog" (which records nothing)."""
    done = cli("exec", "hog", "sh", "-c", f"dd if=/dev/zero of=/{tag} bs=4k; sync", timeout=TIMEOUT_S)
    assert "Traceback" not in done.stderr, done.stderr
    assert free_bytes(cli) < 1024 * 1024, free_bytes(cli)


def test_a_full_disk_is_survived_and_freed_with_isobox_commands(
    small: Cli, registry: registries.Registry, tmp_path: Path
) -> None:
    cli = small
    mount = str(cli.root.parent)
    cli("run", "--name", "src", "busybox", "sh", "-c", "head -c 4000000 /dev/urandom > /data", check=True)
    cli("commit", "src", "localhost/made:1", check=True)
    archive = tmp_path / "made.tar"  # on another file system: only the store is full
    cli("save", "-o", str(archive), "localhost/made:1", check=True)
    cli("rm", "src", check=True)
    cli("rmi", "localhost/made:1", check=True)
    cli("run", "-d", "--name", "talker", "busybox", "sh", "-c",
        "while true; do echo talking-talking-talking-talking-talking; done", check=True)
    cli("run", "-d", "--name", "web", "busybox", "sleep", "600", check=True)
    cli("run", "-d", "--name", "hog", "busybox", "sleep", "600", check=True)
    cli("volume", "create", "keep", check=True)

    # 1. Filled by a foreground run (the talker's log fills it too): it ends, with the workload's code.
    first = fill(cli, "filler1")
    assert first.returncode in (0, 255), first.stderr  # 255: the disk was too full for conmon's exit file

    # 2. On the full disk: reading works; what must write fails clearly.
    for verb in (["ps", "-a"], ["images"], ["volume", "ls"], ["inspect", "web"], ["logs", "--tail", "3", "talker"],
                 ["system", "df"]):
        done = cli(*verb, timeout=TIMEOUT_S)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (verb, done.stderr)
    top_up(cli, "after-reads")
    clear(cli("commit", "filler1", "localhost/filled:1", timeout=TIMEOUT_S), mount)
    top_up(cli, "after-commit")
    loaded = cli("load", "-i", str(archive), timeout=TIMEOUT_S)
    clear(loaded, mount)
    assert str(archive) not in loaded.stderr, loaded.stderr  # the store is full, not the archive broken
    clear(cli("pull", "--insecure", f"{registry.host}/lib/multi:1", timeout=TIMEOUT_S), mount)
    top_up(cli, "after-pull")
    clear(cli("save", "-o", str(cli.root / "out.tar"), "busybox", timeout=TIMEOUT_S), mount)
    assert not list(cli.root.glob(".out.tar.tmp-*"))
    started = cli("run", "busybox", "echo", "hi", timeout=TIMEOUT_S)
    assert "Traceback" not in started.stderr, started.stderr
    assert started.returncode == 0 or "full" in started.stderr, started.stderr
    volume = cli("volume", "create", "more", timeout=TIMEOUT_S)
    assert "Traceback" not in volume.stderr

    # 3. Freed with isobox's own commands, on the full disk.
    top_up(cli, "before-rm")
    for name in ("filler1", "talker"):
        removed = cli("rm", "-f", name, timeout=TIMEOUT_S)
        assert removed.returncode == 0 and "Traceback" not in removed.stderr, removed.stderr
    assert free_bytes(cli) > 200 * 1024 * 1024
    cli("tag", "busybox", "localhost/extra:1", check=True)
    fill(cli, "filler2")
    assert cli("rmi", "localhost/extra:1", timeout=TIMEOUT_S).returncode == 0
    pruned = cli("system", "prune", input=YES, timeout=TIMEOUT_S)
    assert pruned.returncode == 0 and "removed 1 workloads" in pruned.stdout.lower(), pruned.stdout + pruned.stderr
    assert free_bytes(cli) > 200 * 1024 * 1024

    # 4. Everything works again, and what was kept is intact.
    assert cli("run", "--rm", "busybox", "echo", "again", check=True).stdout == "again\n"
    names = sorted(w["name"] for w in json.loads(cli("ps", "-a", "--json", check=True).stdout))
    assert names == ["hog", "web"]
    assert "keep" in cli("volume", "ls", check=True).stdout
    cli("pull", "--insecure", f"{registry.host}/lib/multi:1", check=True, timeout=TIMEOUT_S)
    cli("load", "-i", str(archive), check=True, timeout=TIMEOUT_S)
    assert not [p for p in (cli.root / "lib" / "tmp").iterdir()], "a failed write left a file behind"
    checked = cli("system", "check")
    assert checked.returncode == 0, checked.stdout
