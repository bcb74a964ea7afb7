"""In-root path resolution: an image's symlinks can never lead isobox outside the rootfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isobox.errors import InvalidArgumentError, UnsafeLayerError
from isobox.storage.rootfs import ensure_mountpoint, read_text_in_root, resolve_in_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "usr/lib").mkdir(parents=True)
    (tmp_path / "secret").write_text("host secret")
    return r


def test_absolute_symlink_stays_inside(root: Path, tmp_path: Path) -> None:
    (root / "etc/passwd").symlink_to(tmp_path / "secret")  # points at a host path, by absolute name
    assert resolve_in_root(root, "/etc/passwd") == root / str(tmp_path / "secret").lstrip("/")
    assert read_text_in_root(root, "/etc/passwd") is None


def test_dotdot_symlink_is_clamped(root: Path) -> None:
    (root / "etc/passwd").symlink_to("../../../../../secret")
    assert resolve_in_root(root, "/etc/passwd") == root / "secret"
    assert read_text_in_root(root, "/etc/passwd") is None


def test_relative_symlinks_inside_work(root: Path) -> None:
    (root / "lib").symlink_to("usr/lib")
    (root / "usr/lib/f").write_text("ok")
    assert read_text_in_root(root, "/lib/f") == "ok"


def test_symlink_loop_is_an_error(root: Path) -> None:
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(UnsafeLayerError, match="too many symlinks"):
        resolve_in_root(root, "/a/x")


def test_symlinked_mountpoint_becomes_a_real_directory(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "proc").symlink_to(outside)
    assert ensure_mountpoint(root, "/proc", is_dir=True) == "/proc"
    assert (root / "proc").is_dir() and not (root / "proc").is_symlink()
    assert list(outside.iterdir()) == []  # nothing was created outside


def test_proc_symlink_to_root_is_replaced(root: Path) -> None:
    (root / "proc").symlink_to("/")
    assert ensure_mountpoint(root, "/proc", is_dir=True) == "/proc"
    assert (root / "proc").is_dir() and not (root / "proc").is_symlink()


def test_symlinked_file_mountpoint_is_replaced_in_root(root: Path, tmp_path: Path) -> None:
    (root / "etc/hosts").symlink_to("/etc/shadow")
    dest = ensure_mountpoint(root, "/etc/hosts", is_dir=False)
    assert dest == "/etc/hosts"
    assert (root / "etc/hosts").is_file() and not (root / "etc/hosts").is_symlink()
    assert os.path.realpath(root / dest.lstrip("/")).startswith(str(root))


def test_symlinked_parent_is_resolved_in_root(root: Path, tmp_path: Path) -> None:
    (root / "etc2").symlink_to(tmp_path)  # /etc2 -> host dir: its in-root meaning is root/<tmp_path>
    dest = ensure_mountpoint(root, "/etc2/hosts", is_dir=False)
    assert dest == str(tmp_path) + "/hosts"
    assert not (tmp_path / "hosts").exists()


def test_relative_destination_is_refused(root: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        ensure_mountpoint(root, "proc", is_dir=True)


def test_resolution_sees_the_workloads_mounts(tmp_path: Path) -> None:
    """A symlink inside a volume is resolved in the workload's view: to the root's files, or to another mount."""
    root, volume = tmp_path / "root", tmp_path / "volume"
    (root / "etc").mkdir(parents=True)
    (root / "data").mkdir()
    volume.mkdir()
    (volume / "up").symlink_to("/")
    (volume / "back").symlink_to("../../../..")
    mounts = {"/data": volume}
    assert resolve_in_root(root, "/data/file", mounts) == volume / "file"
    assert resolve_in_root(root, "/data/up/etc", mounts) == root / "etc"
    assert resolve_in_root(root, "/data/back/etc", mounts) == root / "etc"
    assert resolve_in_root(root, "/data/up/data/x", mounts) == volume / "x"
    assert resolve_in_root(root, "/data", mounts) == volume
