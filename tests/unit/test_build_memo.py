"""Which builds are remembered whole, and what changes their key (service/build_memo.py)."""

from __future__ import annotations

import os
from pathlib import Path

from isobox.builder.context import BuildContext
from isobox.builder.dockerignore import parse_ignore
from isobox.builder.options import BuildOptions
from isobox.service.build_memo import key


def _context(root: Path, text: str = "FROM busybox\nCOPY . /\n", ignore: str = "") -> BuildContext:
    return BuildContext(root, text, "Dockerfile", parse_ignore(ignore))


def test_the_key_follows_every_input(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "skip.log").write_text("s")
    options = BuildOptions(context_dir=tmp_path)
    first = key(options, _context(tmp_path, ignore="*.log"))
    assert first is not None and first == key(options, _context(tmp_path, ignore="*.log"))
    (tmp_path / "skip.log").write_text("changed")  # ignored: no part of the build
    assert key(options, _context(tmp_path, ignore="*.log")) == first
    with_arg = BuildOptions(context_dir=tmp_path, build_args=(("A", "1"),))
    assert key(with_arg, _context(tmp_path, ignore="*.log")) != first
    assert key(options, _context(tmp_path, "FROM busybox\n", ignore="*.log")) != first
    assert key(options, _context(tmp_path)) != first  # the ignore rules
    stat = os.stat(tmp_path / "a.txt")
    (tmp_path / "a.txt").write_text("b")  # same size, same times: the change time still tells
    os.utime(tmp_path / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert key(options, _context(tmp_path, ignore="*.log")) != first


def test_builds_that_are_never_remembered(tmp_path: Path) -> None:
    assert key(BuildOptions(context_tar=tmp_path / "ctx.tar"), _context(tmp_path)) is None
    downloads = _context(tmp_path, "FROM busybox\nADD https://example.org/f /f\n")
    assert key(BuildOptions(context_dir=tmp_path), downloads) is None
