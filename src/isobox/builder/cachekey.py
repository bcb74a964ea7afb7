"""Build cache keys: when a step may reuse what an earlier build made (the Dockerfile reference,
"Leverage build cache", and Docker's own rules).

A stage's first key names its base: an image by its id (config digest) and platform, ``scratch``, or the
last key of the stage it is built on; SOURCE_DATE_EPOCH joins it, as it changes the layers' times. Each
step's key is the digest of the key before it and of what the step's result depends on:

- the instruction as expanded (its origin left out: moving a line changes nothing; the text does);
- for RUN, every build arg in scope, used or not (they are in its environment), as Docker does;
- for COPY, ADD and RUN --mount=type=bind, the digest of the context files read (content, mode, owner),
  the key of a ``--from`` stage or the id of a ``--from`` image, and the digests of downloaded files.

ARG changes no key of its own: an ARG whose value changed misses the cache where it is first used, not
where it is declared. Secrets, cache mounts, ``--network`` and ``--vm`` are no part of any key.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from isobox.builder import instructions as ins
from isobox.builder.stages import Step

__all__ = ["canonical", "stage_key", "step_key"]


def canonical(value: Any) -> Any:
    """A JSON-able form of an instruction: every field but ``origin``, recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found = {field.name: canonical(getattr(value, field.name)) for field in dataclasses.fields(value)
                 if field.name != "origin"}
        if isinstance(value, ins.Instruction):
            found["keyword"] = value.keyword
        return found
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [canonical(item) for item in value]
    return value


def _digest(document: Mapping[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def stage_key(base: str, *, epoch: int | None) -> str:
    """``base``: "image ID PLATFORM", "scratch", or the key a stage ended with."""
    return _digest({"base": base, "epoch": epoch})


def step_key(parent: str, step: Step, inputs: Mapping[str, Any] | None = None) -> str:
    """The key of ``step`` after ``parent``; ``inputs`` are what it reads (files, stages, downloads)."""
    if isinstance(step.instruction, ins.Arg):
        return parent
    document: dict[str, Any] = {"parent": parent, "instruction": canonical(step.instruction)}
    if isinstance(step.instruction, ins.Run):
        document["args"] = sorted(step.build_args)
    if inputs:
        document["inputs"] = dict(inputs)
    return _digest(document)
