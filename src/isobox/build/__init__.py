"""The Dockerfile front end of ``isobox build``: pure code, no I/O beyond reading the files it is given.

    dockerfile.parse(text)      → Dockerfile: directives, global ARGs, stages of typed instructions
    stages.plan(dockerfile, …)  → BuildPlan: the stages a target needs, in order, with expanded steps
    expand                      → Docker's shell-word rules ($VAR, ${VAR:-word}, quotes, escapes)
    dockerignore                → .dockerignore rules and which ignore file applies

Module map: ``lexer`` (directives, continuations, comments, heredocs → logical lines), ``words`` (flag
extraction, word and JSON splitting), ``decode`` (logical line → typed instruction), ``instructions``
(the frozen instruction dataclasses), ``mounts`` (RUN --mount specs), ``flags`` (instruction flags),
``substitute`` (which fields of which instruction Docker expands), ``source`` (errors with file and line).

The executor (contexts, RUN, COPY, the layer cache, the CLI verb) is built on top of this package.
"""

from __future__ import annotations

from isobox.build.dockerfile import Dockerfile, Stage, parse
from isobox.build.dockerignore import IgnoreRules, find_ignore_file, load_ignore_rules
from isobox.build.source import DockerfileError, Origin
from isobox.build.stages import BaseImage, BaseKind, BuildPlan, SourceRef, StageBase, StagePlan, Step, plan

__all__ = [
    "BaseImage",
    "BaseKind",
    "BuildPlan",
    "Dockerfile",
    "DockerfileError",
    "IgnoreRules",
    "Origin",
    "SourceRef",
    "Stage",
    "StageBase",
    "StagePlan",
    "Step",
    "find_ignore_file",
    "load_ignore_rules",
    "parse",
    "plan",
]
