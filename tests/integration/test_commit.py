"""`isobox commit`: a container's changes (new files, deletions, opaque dirs) become an image layer."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

from isobox.storage.layerdiff import layer_bytes

pytestmark = pytest.mark.integration


def test_commit_then_run_the_new_image(cli: Cli) -> None:
    cli(
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo hello > /greeting; rm /etc/os-release; rm -r /var/log; mkdir /var/log; echo new > /var/log/only",
        check=True,
    )
    image_id = cli("commit", "-m", "add greeting", "src", "localhost/committed:1", check=True).stdout.strip()
    assert image_id.startswith("sha256:")
    done = cli(
        "run",
        "--rm",
        "localhost/committed:1",
        "sh",
        "-c",
        "cat /greeting; test -e /etc/os-release || echo deleted; ls /var/log",
    )
    assert done.stdout == "hello\ndeleted\nonly\n", done.stderr
    history = json.loads(cli("image", "history", "--json", "localhost/committed:1").stdout)
    assert any("add greeting" in json.dumps(h) for h in history)


def test_layerdiff_translates_overlay_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "dir").mkdir(parents=True)
    (upper / "dir" / "file").write_text("data")
    os.link(upper / "dir" / "file", upper / "hard")
    os.mknod(upper / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (upper / "opaque").mkdir()
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    (upper / "etc").mkdir()
    (upper / "etc" / "hosts").write_text("")
    data = layer_bytes(upper, skip=frozenset({"/etc/hosts"}))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members[".wh.gone"].isreg()
    assert "opaque/.wh..wh..opq" in members
    assert members["hard"].islnk() or members["dir/file"].islnk()
    assert "etc/hosts" not in members and "etc" in members


def test_layerdiff_compares_two_trees(tmp_path: Path) -> None:
    from isobox.storage.layerdiff import write_diff

    base, new = tmp_path / "base", tmp_path / "new"
    for root in (base, new):
        (root / "same").mkdir(parents=True)
        (root / "same" / "f").write_text("unchanged")
        os.utime(root / "same" / "f", (1, 1))
        (root / "link").symlink_to("same")
    (base / "old").mkdir()
    (base / "old" / "inside").write_text("x")
    (base / "becomes-file").mkdir()
    (base / "becomes-file" / "child").write_text("x")
    (new / "becomes-file").write_text("now a file")
    (new / "same" / "added").write_text("new")
    (new / "link").unlink()
    (new / "link").symlink_to("elsewhere")
    buffer = io.BytesIO()
    write_diff(base, new, buffer, skip=frozenset({"/skipped"}))
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as tar:
        names = sorted(m.name for m in tar.getmembers())
    assert names == [".wh.old", "becomes-file", "link", "same/added"]


@pytest.mark.vm
@pytest.mark.timeout(300)
def test_commit_a_stopped_vm_then_run_the_image_as_container_and_vm(cli: Cli) -> None:
    script = "echo from-vm > /greeting; rm /etc/os-release; mkdir -p /opt/app; echo v1 > /opt/app/version"
    cli("run", "--vm", "--network", "none", "--name", "vsrc", "busybox", "sh", "-c", script, check=True, timeout=120)
    cli("commit", "-m", "vm changes", "vsrc", "localhost/from-vm:1", check=True, timeout=120)
    check = "cat /greeting /opt/app/version; test -e /etc/os-release || echo deleted"
    container = cli("run", "--rm", "--network", "none", "localhost/from-vm:1", "sh", "-c", check)
    assert container.stdout == "from-vm\nv1\ndeleted\n", container.stderr
    vm = cli("run", "--rm", "--vm", "--network", "none", "localhost/from-vm:1", "sh", "-c", check, timeout=120)
    assert vm.stdout == "from-vm\nv1\ndeleted\n", vm.stderr
    layers = json.loads(cli("image", "history", "--json", "localhost/from-vm:1").stdout)
    assert any("vm changes" in json.dumps(h) for h in layers)


@pytest.mark.vm
@pytest.mark.timeout(300)
def test_commit_of_a_running_vm_is_refused(cli: Cli) -> None:
    cli("run", "-d", "--vm", "--network", "none", "--name", "vrun", "busybox", "sleep", "300", check=True, timeout=120)
    done = cli("commit", "vrun", "localhost/never:1")
    assert done.returncode == 125 and "stop the VM first" in done.stderr
    assert cli("image", "inspect", "localhost/never:1").returncode != 0


def test_commit_on_a_full_disk_fails_clearly_and_records_nothing(cli: Cli, isobox_root: Path) -> None:
    import subprocess

    cli("run", "--name", "big", "busybox", "dd", "if=/dev/urandom", "of=/big", "bs=1M", "count=12", check=True)
    scratch = isobox_root / "lib" / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(scratch)], check=True)
    try:
        done = cli("commit", "big", "localhost/too-big:1")
        assert done.returncode == 125, done.stderr
        assert f"the file system at {scratch} is full" in done.stderr and "Traceback" not in done.stderr
        assert list(scratch.iterdir()) == []  # the temporary layer is gone
    finally:
        subprocess.run(["umount", str(scratch)], check=True)
    assert cli("image", "inspect", "localhost/too-big:1").returncode != 0
    assert "too-big" not in cli("images").stdout
