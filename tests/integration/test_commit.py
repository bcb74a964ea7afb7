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

from isobox.images.layerdiff import layer_bytes

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
