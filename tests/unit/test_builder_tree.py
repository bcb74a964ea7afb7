"""The layered view COPY reads from: layers merged as overlayfs merges them, links resolved by the tree
itself (refused out of the build context, kept inside an image's root), .dockerignore, Go's globs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from isobox.builder.dockerignore import parse_ignore
from isobox.builder.tree import Escape, LayeredTree, TreeEscapeError, match_element

ROOT = os.geteuid() == 0


def _files(base: Path, files: dict[str, str]) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text)
    return base


def _names(tree: LayeredTree, path: str = "") -> list[str]:
    entry = tree.resolve(path)
    assert entry is not None
    return [child.path for child in tree.walk(entry)]


def test_upper_layers_win_and_directories_merge(tmp_path: Path) -> None:
    low = _files(tmp_path / "low", {"etc/a": "low a", "etc/b": "low b", "file": "low"})
    high = _files(tmp_path / "high", {"etc/a": "high a", "etc/c": "high c"})
    tree = LayeredTree([low, high], escape=Escape.SCOPE, what="an image")
    entry = tree.resolve("etc/a")
    assert entry is not None and entry.host.read_text() == "high a"
    assert _names(tree, "etc") == ["etc/a", "etc/b", "etc/c"]
    assert tree.resolve("etc/missing") is None and tree.resolve("file/below") is None


@pytest.mark.skipif(not ROOT, reason="whiteouts are character devices, opaque directories trusted.* xattrs")
def test_whiteouts_and_opaque_directories_hide_lower_layers(tmp_path: Path) -> None:
    low = _files(tmp_path / "low", {"gone": "x", "dir/old": "x", "keep": "k", "swap/inner": "x"})
    high = _files(tmp_path / "high", {"dir/new": "n", "swap": "now a file"})
    os.mknod(high / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    os.setxattr(high / "dir", "trusted.overlay.opaque", b"y")
    tree = LayeredTree([low, high], escape=Escape.SCOPE, what="an image")
    assert tree.resolve("gone") is None and tree.resolve("swap/inner") is None
    assert _names(tree) == ["dir", "dir/new", "keep", "swap"]


def test_context_links_may_not_leave_it(tmp_path: Path) -> None:
    ctx = _files(tmp_path / "ctx", {"dir/real": "r"})
    (ctx / "inside").symlink_to("dir/real")
    (ctx / "dir" / "up").symlink_to("../dir/real")
    (ctx / "abs").symlink_to("/etc/passwd")
    (ctx / "out").symlink_to("../outside")
    (ctx / "dir" / "deep").symlink_to("../../x")
    tree = LayeredTree([ctx], escape=Escape.REFUSE, what="the build context")
    for name in ("inside", "dir/up"):
        found = tree.resolve(name)
        assert found is not None and found.path == "dir/real"
    for name in ("abs", "out", "dir/deep", "abs/x"):
        with pytest.raises(TreeEscapeError, match="outside the build context"):
            tree.resolve(name)
    link = tree.resolve("abs", follow=False)
    assert link is not None and link.is_symlink  # a link itself may be copied; only following it is refused


def test_image_links_resolve_inside_its_root(tmp_path: Path) -> None:
    image = _files(tmp_path / "image", {"bin/busybox": "bb", "etc/real": "r"})
    (image / "bin" / "sh").symlink_to("/bin/busybox")
    (image / "up").symlink_to("../../../etc/real")
    (image / "loop").symlink_to("loop")
    tree = LayeredTree([image], escape=Escape.SCOPE, what="an image")
    sh, up = tree.resolve("bin/sh"), tree.resolve("up")
    assert sh is not None and sh.path == "bin/busybox" and up is not None and up.path == "etc/real"
    with pytest.raises(Exception, match="too many levels of symbolic links"):
        tree.resolve("loop")


def test_ignore_rules_hide_context_paths_but_exceptions_reinclude(tmp_path: Path) -> None:
    ctx = _files(tmp_path / "ctx", {"keep": "k", "x.env": "s", "logs/a.log": "a", "logs/keep.log": "k"})
    rules = parse_ignore("*.env\nlogs\n!logs/keep.log\n")
    tree = LayeredTree([ctx], escape=Escape.REFUSE, what="the build context", ignore=rules)
    assert _names(tree) == ["keep", "logs", "logs/keep.log"]
    assert tree.resolve("x.env") is None and tree.resolve("logs/a.log") is None


def test_globs_follow_go_filepath_match(tmp_path: Path) -> None:
    ctx = _files(tmp_path / "ctx", {"a.txt": "", "b.txt": "", "c.md": "", "sub/d.txt": "", "sub/e.txt": ""})
    tree = LayeredTree([ctx], escape=Escape.REFUSE, what="the build context")
    assert [e.path for e in tree.glob("*.txt")] == ["a.txt", "b.txt"]
    assert [e.path for e in tree.glob("*/?.txt")] == ["sub/d.txt", "sub/e.txt"]
    assert [e.path for e in tree.glob("[a-b].*")] == ["a.txt", "b.txt"]
    assert [e.path for e in tree.glob("[^a-b].*")] == ["c.md"]
    assert tree.glob("nothing*") == [] and tree.glob("missing") == []
    assert match_element("\\*", "*") and not match_element("\\*", "a")
