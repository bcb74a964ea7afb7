"""Layer merging for the VM root disk: whiteouts, opaque directories, and no escape through symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isobox.drivers.vm.rootdisk import OPAQUE_XATTR, apply_layer, image_file

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="whiteouts (0/0 devices) and trusted xattrs need root")


def write(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_upper_files_win_and_symlinks_are_not_followed(tmp_path: Path) -> None:
    lower, upper, staging, outside = (tmp_path / n for n in ("lower", "upper", "staging", "outside"))
    for d in (lower, upper, staging, outside):
        d.mkdir()
    write(lower / "etc/conf", "old")
    os.symlink(str(outside), lower / "escape")
    write(upper / "etc/conf", "new")
    write(upper / "escape/planted", "evil")  # a directory where the lower layer had a symlink
    apply_layer(str(lower), str(staging))
    apply_layer(str(upper), str(staging))
    assert (staging / "etc/conf").read_text() == "new"
    assert not (staging / "escape").is_symlink()
    assert (staging / "escape/planted").read_text() == "evil"
    assert list(outside.iterdir()) == []


@needs_root
def test_whiteouts_and_opaque_directories(tmp_path: Path) -> None:
    lower, upper, staging = (tmp_path / n for n in ("lower", "upper", "staging"))
    for d in (lower, upper, staging):
        d.mkdir()
    write(lower / "gone.txt")
    write(lower / "dir/old")
    write(lower / "keep/a")
    os.mknod(upper / "gone.txt", 0o020000, os.makedev(0, 0))
    (upper / "dir").mkdir()
    os.setxattr(upper / "dir", OPAQUE_XATTR, b"y")
    write(upper / "dir/new")
    apply_layer(str(lower), str(staging))
    apply_layer(str(upper), str(staging))
    assert not (staging / "gone.txt").exists()
    assert sorted(p.name for p in (staging / "dir").iterdir()) == ["new"]
    assert (staging / "keep/a").exists()
    assert image_file((str(lower), str(upper)), "gone.txt") is None
    assert image_file((str(lower), str(upper)), "dir/old") is None
    assert image_file((str(lower), str(upper)), "keep/a") == "x"
