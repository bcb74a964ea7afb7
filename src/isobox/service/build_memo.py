"""Whole builds remembered: a rebuild whose inputs did not change gives the image it gave before, without
parsing, planning or looking up its steps one by one (what a rebuild costs then is mostly start-up).

A build's inputs, digested into its key: the Dockerfile's text and name, the options that change the
image (build args, SOURCE_DATE_EPOCH among them, target, labels, platform), the .dockerignore rules, and
every file of the context they leave in, by its metadata (type, mode, owner, size, modification and
change times, inode: an edit changes the change time even when it keeps the size and the modification
time). The record keeps the images the build read, by reference, and its steps. It answers only when
the image is still in the store and each reference still names the same image; the steps are then
reported as from the cache, as a full pass over the cache would report them.

Builds that are not remembered: an archive context (extracted anew each time), a Dockerfile that downloads
(``http://`` or ``https://`` anywhere in it: ADD's URLs are read again each build), and contexts of more
than MAX_ENTRIES files (walking them could cost more than the per-step lookups it saves). A build with
``--no-cache`` or ``--pull`` is never answered from memory, and what it made is remembered in place of
what was (as the cache then gives its newer steps). `builder prune` forgets every build with the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isobox.builder.context import BuildContext
from isobox.builder.dockerignore import IgnoreRules
from isobox.builder.events import BuildEvent, EventKind, ProgressFn
from isobox.builder.options import BuildOptions
from isobox.builder.outcome import BuildResult
from isobox.errors import IsoboxError
from isobox.service.context import Context
from isobox.state.build_cache import BuildCacheRepository

MAX_ENTRIES = 20_000
VERSION = 1  # of the key's recipe: a change makes every remembered build a miss


def _fingerprint(root: Path, rules: IgnoreRules) -> str | None:
    """The digest of the context's files as the build sees them, or None past MAX_ENTRIES."""
    hasher = hashlib.sha256()
    count = 0
    for directory, dirs, files in os.walk(root, followlinks=False):
        relative = os.path.relpath(directory, root)
        prefix = "" if relative == "." else relative + "/"
        dirs[:] = sorted(name for name in dirs if rules.must_walk(prefix + name))
        for name in sorted(dirs + files):
            path = prefix + name
            if rules.excludes(path) and name not in dirs:
                continue
            info = os.lstat(os.path.join(directory, name))
            link = os.readlink(os.path.join(directory, name)) if stat.S_ISLNK(info.st_mode) else ""
            hasher.update(f"{path}\0{info.st_mode:o}\0{info.st_uid}\0{info.st_gid}\0{info.st_size}\0"
                          f"{info.st_mtime_ns}\0{info.st_ctime_ns}\0{info.st_ino}\0{link}\n"
                          .encode("utf-8", "surrogateescape"))
            count += 1
            if count > MAX_ENTRIES:
                return None
    return hasher.hexdigest()


def key(options: BuildOptions, context: BuildContext) -> str | None:
    """The key of this build's inputs, or None when it may not be answered from a remembered build."""
    text = context.dockerfile_text
    if options.context_dir is None or "http://" in text or "https://" in text:
        return None
    files = _fingerprint(context.root, context.ignore)
    if files is None:
        return None
    document = {
        "version": VERSION, "dockerfile": text, "name": context.dockerfile_name,
        "ignore": [[pattern.text, pattern.exception] for pattern in context.ignore.patterns],
        "args": sorted(options.build_args), "target": options.target, "labels": sorted(options.labels),
        "platform": options.platform, "files": files,
    }
    encoded = json.dumps(document, sort_keys=True).encode("utf-8", "surrogateescape")
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


@dataclass
class Steps:
    """What a build reported, kept to report it again: each step's number, stage, text and whether its
    result was a layer; the warnings."""

    steps: list[list[Any]] = field(default_factory=list)
    layered: set[int] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    total: int = 0

    def tee(self, progress: ProgressFn | None) -> ProgressFn:
        def record(event: BuildEvent) -> None:
            if event.kind is EventKind.STEP:
                self.steps.append([event.number, event.stage, event.text])
                self.total = event.total
            elif event.kind is EventKind.CACHED or (event.kind is EventKind.DONE and event.layer):
                self.layered.add(event.number)
            elif event.kind is EventKind.WARNING:
                self.warnings.append(event.text)
            if progress is not None:
                progress(event)

        return record


def remember(ctx: Context, memo_key: str, result: BuildResult, bases: list[tuple[str, str, str]],
             steps: Steps) -> None:
    record = {"bases": bases, "steps": [[*step, step[0] in steps.layered] for step in steps.steps],
              "total": steps.total, "warnings": steps.warnings}
    BuildCacheRepository(ctx.db).put_result(memo_key, result.image_id, json.dumps(record))


def answer(ctx: Context, memo_key: str, options: BuildOptions, progress: ProgressFn | None) -> BuildResult | None:
    """The result of the remembered build ``memo_key`` (tagged as ``options`` asks), or None."""
    repository = BuildCacheRepository(ctx.db)
    found = repository.result(memo_key)
    if found is None:
        return None
    image_id, text = found
    record = json.loads(text)
    try:
        ctx.images.get(image_id)
        fresh = all(ctx.images.resolve(reference, platform=platform).id == known
                    for reference, platform, known in record["bases"])
    except IsoboxError:
        fresh = False
    if not fresh:
        repository.forget_result(memo_key)
        return None
    emit: Callable[[BuildEvent], None] = progress or (lambda event: None)
    total = int(record["total"])
    for warning in record["warnings"]:
        emit(BuildEvent(EventKind.WARNING, text=warning))
    for number, stage, step_text, layered in record["steps"]:
        emit(BuildEvent(EventKind.STEP, number, total, stage, step_text))
        if layered:
            emit(BuildEvent(EventKind.CACHED, number, total, stage))
        emit(BuildEvent(EventKind.DONE, number, total, stage))
    for tag in options.tags:
        if ctx.images.records.by_name(tag) != image_id:
            ctx.images.tag(image_id, tag)
    emit(BuildEvent(EventKind.IMAGE, text=image_id, tags=options.tags))
    cached = sum(1 for step in record["steps"] if step[3])
    return BuildResult(image_id, options.tags, total, cached, tuple(record["warnings"]))
