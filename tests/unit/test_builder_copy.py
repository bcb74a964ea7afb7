"""COPY and ADD planned and written as a layer tar: destinations, owners, modes, parents, refusals."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from isobox.builder import instructions as ins
from isobox.builder.copy import plan_copy
from isobox.builder.copylayer import write_copy
from isobox.builder.layertar import TarSink
from isobox.builder.source import Origin
from isobox.builder.tree import Escape, LayeredTree
from isobox.errors import InvalidArgumentError
from isobox.images.layer_limits import UnpackPolicy

ORIGIN = Origin("Dockerfile", 2, 2, "COPY …")


def _copy(*sources: str, dest: str, **flags: object) -> ins.Copy:
    return ins.Copy(origin=ORIGIN, sources=sources, dest=dest, **flags)  # type: ignore[arg-type]


def _tree(base: Path, files: dict[str, str]) -> LayeredTree:
    for name, text in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text)
    return LayeredTree([base], escape=Escape.REFUSE, what="the build context")


def _image(base: Path) -> LayeredTree:
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (base / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    (base / "tmp").mkdir()
    (base / "tmp").chmod(0o1777)
    (base / "var").mkdir()
    (base / "var" / "run").symlink_to("/run")
    (base / "run").mkdir()
    return LayeredTree([base], escape=Escape.SCOPE, what="an image")


def _layer(tmp_path: Path, instruction: ins.Copy, source: LayeredTree, image: LayeredTree | None = None,
           workdir: str = "/") -> dict[str, tarfile.TarInfo]:
    plan = plan_copy(instruction, workdir=workdir, source=source, from_context=True, image=image)
    sink = TarSink(tmp_path / "layer.tar", epoch=None)
    write_copy(plan, sink, image=image, scratch=tmp_path, policy=UnpackPolicy(), epoch=None)
    sink.close()
    with tarfile.open(tmp_path / "layer.tar") as tar:
        return {member.name: member for member in tar.getmembers()}


def test_a_file_into_a_directory_or_as_the_destination(tmp_path: Path) -> None:
    source = _tree(tmp_path / "ctx", {"a.txt": "a"})
    image = _image(tmp_path / "image")
    assert set(_layer(tmp_path, _copy("a.txt", dest="/tmp/"), source, image)) == {"tmp", "tmp/a.txt"}
    assert set(_layer(tmp_path, _copy("a.txt", dest="/tmp"), source, image)) == {"tmp", "tmp/a.txt"}  # a dir
    assert set(_layer(tmp_path, _copy("a.txt", dest="/new/name"), source, image)) == {"new", "new/name"}
    assert set(_layer(tmp_path, _copy("a.txt", dest="rel/"), source, image, "/srv")) == {
        "srv", "srv/rel", "srv/rel/a.txt"}


def test_parents_keep_the_image_s_metadata_and_links_are_followed(tmp_path: Path) -> None:
    source = _tree(tmp_path / "ctx", {"a.txt": "a"})
    members = _layer(tmp_path, _copy("a.txt", dest="/var/run/x/"), source, _image(tmp_path / "image"))
    assert set(members) == {"run", "run/x", "run/x/a.txt"}  # /var/run is a link to /run in the image
    tmp = _layer(tmp_path, _copy("a.txt", dest="/tmp/"), source, _image(tmp_path / "image2"))["tmp"]
    assert tmp.mode == 0o1777  # an existing directory is written as it is, never reset to 0755


def test_chown_chmod_and_created_directories(tmp_path: Path) -> None:
    source = _tree(tmp_path / "ctx", {"a.txt": "a"})
    image = _image(tmp_path / "image")
    members = _layer(tmp_path, _copy("a.txt", dest="/opt/app/", chown="app:staff", chmod="0640"), source, image)
    assert (members["opt/app/a.txt"].uid, members["opt/app/a.txt"].gid, members["opt/app/a.txt"].mode) == (
        1000, 50, 0o640)
    assert (members["opt"].uid, members["opt"].mode) == (1000, 0o755)
    alone = _layer(tmp_path, _copy("a.txt", dest="/b", chown="app"), source, image)["b"]
    assert (alone.uid, alone.gid) == (1000, 1000)  # a user alone: its uid is the gid too (the reference says)
    plain = _layer(tmp_path, _copy("a.txt", dest="/c"), source, image)["c"]
    assert (plain.uid, plain.gid) == (0, 0)
    with pytest.raises(InvalidArgumentError, match="unable to find user nobody"):
        _layer(tmp_path, _copy("a.txt", dest="/d", chown="nobody"), source, image)
    with pytest.raises(InvalidArgumentError, match="not an octal mode"):
        _layer(tmp_path, _copy("a.txt", dest="/d", chmod="u+x"), source, image)


def test_directories_globs_excludes_and_parents(tmp_path: Path) -> None:
    source = _tree(tmp_path / "ctx", {"src/a.py": "", "src/test_a.py": "", "src/pkg/b.py": "", "x.txt": "",
                                      "y.txt": ""})
    assert set(_layer(tmp_path, _copy("src", dest="/app"), source)) == {
        "app", "app/a.py", "app/test_a.py", "app/pkg", "app/pkg/b.py"}
    assert set(_layer(tmp_path, _copy("src", dest="/app", excludes=("test_*",)), source)) == {
        "app", "app/a.py", "app/pkg", "app/pkg/b.py"}
    assert set(_layer(tmp_path, _copy("*.txt", dest="/t/"), source)) == {"t", "t/x.txt", "t/y.txt"}
    assert set(_layer(tmp_path, _copy("src/pkg/b.py", dest="/p/", parents=True), source)) == {
        "p", "p/src", "p/src/pkg", "p/src/pkg/b.py"}
    assert set(_layer(tmp_path, _copy("src/./pkg/b.py", dest="/p/", parents=True), source)) == {
        "p", "p/pkg", "p/pkg/b.py"}
    assert set(_layer(tmp_path, _copy("nothing*", dest="/n/"), source)) == set()


def test_refusals(tmp_path: Path) -> None:
    source = _tree(tmp_path / "ctx", {"a.txt": "", "b.txt": ""})
    cases = [
        (_copy("a.txt", "b.txt", dest="/dir"), "must be a directory ending in /"),
        (_copy("*.txt", dest="/file"), "must be a directory ending in /"),
        (_copy("../a.txt", dest="/x"), "uses '..'"),
        (_copy("/a.txt", dest="/x"), "is an absolute path"),
        (_copy("missing", dest="/x"), "no such file or directory"),
        (_copy("https://example.org/x", dest="/x"), "use ADD for URLs"),
        (_copy("a.txt", dest="/x", excludes=("a.txt",)), "every source is excluded"),
    ]
    for instruction, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            plan_copy(instruction, workdir="/", source=source, from_context=True, image=None)
    add = ins.Add(origin=ORIGIN, sources=("a.txt",), dest="/x", checksum="sha256:00")
    with pytest.raises(InvalidArgumentError, match="only for http"):
        plan_copy(add, workdir="/", source=source, from_context=True, image=None)
    git = ins.Add(origin=ORIGIN, sources=("https://example.org/repo.git",), dest="/x")
    with pytest.raises(InvalidArgumentError, match="Git repository"):
        plan_copy(git, workdir="/", source=source, from_context=True, image=None)


def test_inline_files_and_epoch(tmp_path: Path) -> None:
    source = _tree(tmp_path / "ctx", {})
    instruction = _copy(dest="/etc/app.conf", inline=(ins.InlineFile("EOF", "key=value\n"),))
    plan = plan_copy(instruction, workdir="/", source=source, from_context=True, image=None)
    sink = TarSink(tmp_path / "layer.tar", epoch=1000)
    write_copy(plan, sink, image=None, scratch=tmp_path, policy=UnpackPolicy(), epoch=1000)
    sink.close()
    with tarfile.open(tmp_path / "layer.tar") as tar:
        member = tar.getmember("etc/app.conf")
        assert tar.extractfile(member).read() == b"key=value\n"  # type: ignore[union-attr]
        assert member.mode == 0o644 and {m.mtime for m in tar.getmembers()} == {1000}
