"""The executor's logic against a fake host (no runtime, no store): stages of a group run side by side, the
cache decides what runs, a failing RUN is reported with its step, and a cancelled build commits nothing."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from isobox.builder.context import BuildContext
from isobox.builder.copy import Download
from isobox.builder.dockerfile import parse
from isobox.builder.dockerignore import IgnoreRules
from isobox.builder.executor import BaseState, Executor, RunEvents
from isobox.builder.options import BuildOptions
from isobox.builder.outcome import BuildCancelledError, BuildStepError
from isobox.builder.runstep import RunOutcome, RunRequest
from isobox.images.platform import Platform
from isobox.images.store import LayerRecord, chain_ids
from isobox.state.build_cache import CacheEntry


@dataclass
class FakeHost:
    """Layers as directories under ``scratch``; a RUN "makes" the file its command names (``touch NAME``)."""

    scratch: Path
    dirs: dict[str, Path] = field(default_factory=dict)
    cache: dict[str, CacheEntry] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    commits: list[dict[str, Any]] = field(default_factory=list)
    barrier: threading.Barrier | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def base_image(self, reference: str, platform: Platform) -> BaseState:
        base = self.scratch / "base"
        (base / "etc").mkdir(parents=True, exist_ok=True)
        layer = LayerRecord("sha256:blob0", "sha256:d0", "sha256:d0", 1, "application/vnd.oci.image.layer.v1.tar")
        self.dirs[layer.chain_id] = base
        return BaseState("sha256:" + "b" * 64, (layer,), {"config": {"Env": ["PATH=/bin"]}, "history": []})

    def layer_dirs(self, layers: Sequence[LayerRecord]) -> list[Path]:
        return [self.dirs[layer.chain_id] for layer in layers]

    def cached(self, key: str) -> CacheEntry | None:
        return self.cache.get(key)

    def remember(self, entry: CacheEntry) -> None:
        self.cache[entry.key] = entry

    def store_layer(self, tar: Path, diff_id: str, parents: Sequence[LayerRecord], key: str,
                    created: str) -> CacheEntry:
        chain = chain_ids([layer.diff_id for layer in parents] + [diff_id])[-1]
        target = self.scratch / "layers" / chain.split(":")[1]
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar) as archive:
            archive.extractall(target)
        with self.lock:
            self.dirs[chain] = target
        entry = CacheEntry(key, diff_id, "sha256:" + diff_id[7:], chain, 1, "", created)
        self.cache[key] = entry
        return entry

    def run(self, request: RunRequest, events: RunEvents) -> RunOutcome:
        command = request.argv[-1]
        with self.lock:
            self.runs.append(command)
        events.started("workload-" + str(len(self.runs)))
        events.line(f"running {command}")
        if "wait-for-the-other" in command:
            assert self.barrier is not None
            self.barrier.wait(timeout=10)  # a BrokenBarrierError unless the other stage runs meanwhile
        if "block" in command:
            self.started.set()
            assert self.cancelled.wait(timeout=10)
            raise BuildCancelledError()
        if "fail" in command:
            return RunOutcome(3, None, frozenset(), ("out 1", "out 2"), "w")
        diff = self.scratch / f"diff-{uuid.uuid4().hex}.tar"
        with tarfile.open(diff, "w") as archive:
            name = command.split()[-1].lstrip("/")
            info = tarfile.TarInfo(name)
            info.size = len(name)
            archive.addfile(info, io.BytesIO(name.encode()))
        return RunOutcome(0, diff, frozenset(), (), "w")

    def fetch(self, url: str, checksum: str) -> Download:
        raise AssertionError("no downloads here")

    def commit(self, document: dict[str, Any], layers: Sequence[LayerRecord], tags: Sequence[str]) -> str:
        self.commits.append(document)
        return "sha256:" + hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    def cancel(self) -> None:
        self.cancelled.set()


def _executor(tmp_path: Path, host: FakeHost, text: str, **options: Any) -> Executor:
    ctx_dir = tmp_path / "ctx"
    ctx_dir.mkdir(exist_ok=True)
    context = BuildContext(ctx_dir, text, "Dockerfile", IgnoreRules())
    return Executor(parse(text), context, BuildOptions(context_dir=ctx_dir, **options), host)


def test_stages_of_a_group_build_side_by_side(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host", barrier=threading.Barrier(2))
    text = ("FROM busybox AS one\nRUN wait-for-the-other /one\nFROM busybox AS two\nRUN wait-for-the-other /two\n"
            "FROM busybox\nCOPY --from=one /one /one\nCOPY --from=two /two /two\n")
    result = _executor(tmp_path, host, text).run()
    assert sorted(host.runs) == ["wait-for-the-other /one", "wait-for-the-other /two"]
    assert len(host.commits[0]["rootfs"]["diff_ids"]) == 3 and result.steps == 7


def test_the_cache_decides_what_runs(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host")
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "f").write_text("1")
    text = "FROM busybox\nRUN touch /a\nCOPY f /f\nRUN touch /b\nENV X=1\n"
    first = _executor(tmp_path, host, text).run()
    assert host.runs == ["touch /a", "touch /b"] and first.cached_steps == 0
    again = _executor(tmp_path, host, text).run()
    assert again.image_id == first.image_id and again.cached_steps == 3 and len(host.runs) == 2
    (tmp_path / "ctx" / "f").write_text("2")
    changed = _executor(tmp_path, host, text).run()
    assert changed.cached_steps == 1 and host.runs[2:] == ["touch /b"]
    fresh = _executor(tmp_path, host, text, no_cache=True).run()
    assert fresh.cached_steps == 0 and host.runs[3:] == ["touch /a", "touch /b"]


def test_a_failing_run_names_its_step_and_nothing_is_committed(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host")
    with pytest.raises(BuildStepError) as caught:
        _executor(tmp_path, host, "FROM busybox\nRUN touch /a\nRUN fail now\n").run()
    assert caught.value.exit_code == 3 and caught.value.last_lines == ("out 1", "out 2")
    assert str(caught.value).startswith("build: Dockerfile:3: RUN fail now: exited with code 3")
    assert host.commits == []


def test_a_cancelled_build_stops_its_stages_and_commits_nothing(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host")
    executor = _executor(tmp_path, host, "FROM busybox AS a\nRUN block /a\nFROM busybox AS b\nRUN touch /b\n"
                         "RUN touch /c\nFROM busybox\nCOPY --from=a /a /a\n")
    outcome: list[BaseException] = []

    def build() -> None:
        try:
            executor.run()
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=build)
    runner.start()
    assert host.started.wait(timeout=10)
    executor.cancel.set()
    runner.join(timeout=20)
    assert not runner.is_alive() and isinstance(outcome[0], BuildCancelledError)
    assert host.cancelled.is_set() and host.commits == []
