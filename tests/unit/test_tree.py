"""remove_tree (linux/tree.py): any depth, any modes, symlinks never followed, no descriptor kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from isobox.linux.tree import remove_tree


def deep_tree(root: Path, depth: int) -> None:
    """A chain of ``depth`` directories (built through descriptors: its paths exceed PATH_MAX)."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            if level % 500 == 0:
                os.symlink("/etc/passwd", f"/proc/self/fd/{fd}/link")
                Path(f"/proc/self/fd/{fd}/file").write_text("x")
        os.fchmod(fd, 0)
    finally:
        os.close(fd)


def test_a_tree_deeper_than_shutil_can_remove(tmp_path: Path) -> None:
    deep_tree(tmp_path / "deep", 3000)
    with pytest.raises(RecursionError):
        shutil.rmtree(tmp_path / "deep")
    fds = len(os.listdir("/proc/self/fd"))
    remove_tree(tmp_path / "deep")
    assert not (tmp_path / "deep").exists() and Path("/etc/passwd").exists()
    assert len(os.listdir("/proc/self/fd")) == fds


def test_modes_symlinks_files_and_missing(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "ro/sub").mkdir(parents=True)
    (tree / "ro/sub/f").write_text("x")
    (tree / "out").symlink_to(outside)
    (tree / "ro/sub").chmod(0)
    (tree / "ro").chmod(0o500)
    remove_tree(tree)
    assert not tree.exists() and (outside / "keep").read_text() == "keep"
    remove_tree(tmp_path / "absent")  # missing_ok
    with pytest.raises(FileNotFoundError):
        remove_tree(tmp_path / "absent", missing_ok=False)
    (tmp_path / "file").write_text("x")
    remove_tree(tmp_path / "file")
    assert not (tmp_path / "file").exists()
