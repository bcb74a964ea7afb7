"""The Dockerfile front end of ``isobox build``: pure code, no I/O beyond reading the ignore file.

    dockerfile = parse(text, path="Dockerfile")          directives, global ARGs, stages of instructions
    build = plan(dockerfile, build_args={…}, target=…,   the stages the target needs, in build order,
                 platform=…, base_image=lookup)         each step expanded, with the build args in scope
    rules = load_ignore_rules(context_dir, dockerfile)  which context files COPY and ADD may see

How an executor uses it: plan once without ``base_image`` to learn ``build.images``; fetch them; plan
again with ``base_image`` returning each image's Env and OnBuild triggers (``BaseImage``); then build
``build.groups`` in order (stages of one group are independent), running each stage's ``steps``:
``step.instruction`` is what to do, ``step.source.origin.text`` what history shows, ``step.env`` and
``step.build_args`` (plus ``build.proxy_env`` for RUN) the environment, and ``step.refs`` which stage or
image a ``--from`` names. Every error is a DockerfileError naming the file and line.

Module map: ``lexer`` (directives, continuations, comments, heredocs → logical lines), ``words`` (flag
extraction, word and JSON splitting), ``decode`` (logical line → typed instruction), ``instructions``
(the frozen instruction dataclasses), ``mounts`` (RUN --mount specs), ``flags`` (instruction flags),
``expand`` (Docker's shell-word rules), ``substitute`` (which fields of which instruction the builder
expands), ``graph`` (stage dependencies, cycles, order), ``stages`` (ARG scoping, the plan),
``dockerignore`` (ignore rules), ``source`` (origins and the error).
"""

from __future__ import annotations

from isobox.builder.dockerfile import Dockerfile, Stage, parse
from isobox.builder.dockerignore import IgnoreRules, find_ignore_file, load_ignore_rules
from isobox.builder.source import DockerfileError, Origin
from isobox.builder.stages import BaseImage, BaseKind, BuildPlan, SourceRef, StageBase, StagePlan, Step, plan

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
