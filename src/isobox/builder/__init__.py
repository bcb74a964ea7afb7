"""`isobox build`: the Dockerfile front end (pure code, no I/O beyond reading the ignore file) and the
executor that runs its plan.

    dockerfile = parse(text, path="Dockerfile")          directives, global ARGs, stages of instructions
    build = plan(dockerfile, build_args={…}, target=…,   the stages the target needs, in build order,
                 platform=…, base_image=lookup)         each step expanded, with the build args in scope
    rules = load_ignore_rules(context_dir, dockerfile)  which context files COPY and ADD may see
    Executor(dockerfile, context, options, host).run()  the image (executor.py; the host: service/build.py)

How the executor uses the plan: plan once without ``base_image`` to learn ``build.images``; fetch them; plan
again with ``base_image`` returning each image's Env and OnBuild triggers (``BaseImage``); then build
``build.groups`` in order (stages of one group are independent), running each stage's ``steps``:
``step.instruction`` is what to do, ``step.source.origin.text`` what history shows, ``step.env`` and
``step.build_args`` (plus ``build.proxy_env`` for RUN) the environment, and ``step.refs`` which stage or
image a ``--from`` names. Every error is a DockerfileError naming the file and line.

Front end: ``lexer`` (directives, continuations, comments, heredocs → logical lines), ``words`` (flag
extraction, word and JSON splitting), ``decode`` (logical line → typed instruction), ``instructions``
(the frozen instruction dataclasses), ``mounts`` (RUN --mount specs), ``flags`` (instruction flags),
``expand`` (Docker's shell-word rules), ``substitute`` (which fields of which instruction the builder
expands), ``graph`` (stage dependencies, cycles, order), ``stages`` (ARG scoping, the plan),
``dockerignore`` (ignore rules), ``source`` (origins and the error).

Executor: ``options`` (what a build is asked), ``context`` (the build context and its digests), ``tree``
(a merged, read-only view of layer directories), ``copy`` (COPY and ADD), ``archives`` and ``fetch`` (ADD's
archives and URLs), ``layertar`` (layer tars, a RUN's diff made fit), ``imageconfig`` (the config, RUN
command lines), ``runstep`` (a RUN as a request to the host, its mounts), ``cachekey``, ``executor``
(stages, groups, cancel, commit), ``stagerun`` (one stage's steps), ``events`` and ``outcome``.

Names are loaded on first use (a build answered from memory never loads the parser).
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "Dockerfile": "dockerfile", "Stage": "dockerfile", "parse": "dockerfile",
    "IgnoreRules": "dockerignore", "find_ignore_file": "dockerignore", "load_ignore_rules": "dockerignore",
    "DockerfileError": "source", "Origin": "source",
    "BaseImage": "stages", "BaseKind": "stages", "BuildPlan": "stages", "SourceRef": "stages", "StageBase": "stages",
    "StagePlan": "stages", "Step": "stages", "plan": "stages",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    """The package's names, loaded on first use: a build from the build's memo (service/build.py) reads
    a few modules of this package, never the parser's."""
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'isobox.builder' has no attribute {name!r}")
    return getattr(importlib.import_module(f"isobox.builder.{module}"), name)
