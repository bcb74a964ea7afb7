"""From a parsed Dockerfile to a BuildPlan: stages in build order, ARG scoping, expanded steps.

    plan(dockerfile, build_args={"VERSION": "1.2"}, target="app", platform=…, base_image=…) → BuildPlan

ARG scoping, as the Dockerfile reference ("ARG", "Scope", "Predefined ARGs", "Automatic platform
ARGs") describes it:

- ARGs before the first FROM are global: FROM lines may use them; inside a stage only after a bare
  ``ARG NAME`` re-declares them (which takes the global value).
- An ARG is in scope from its line to the end of its stage and in stages built on that stage.
- ``--build-arg`` values replace defaults of declared ARGs only; the names no ARG declares are listed
  in ``unused_build_args`` (Docker warns about them). ENV always wins over an ARG of the same name.
- HTTP_PROXY, HTTPS_PROXY, FTP_PROXY, NO_PROXY, ALL_PROXY (and lower case) need no ARG: given as
  build args they reach RUN steps (``proxy_env``) without entering history or cache keys.
- TARGETPLATFORM/OS/ARCH/VARIANT and BUILDPLATFORM/OS/ARCH/VARIANT are global ARGs set from the
  target and build platforms (a build arg of the same name overrides them).

The executor may pass ``base_image``: for an image reference and platform, the image's environment
and ONBUILD triggers. Without it a base image counts as empty (PATH still gets Docker's default).
A first plan without it tells which images to fetch (``BuildPlan.images``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from isobox.builder import graph
from isobox.builder import instructions as ins
from isobox.builder.decode import decode_trigger
from isobox.builder.dockerfile import Dockerfile, Stage
from isobox.builder.expand import ExpansionError, expand_word
from isobox.builder.source import DockerfileError, Origin
from isobox.builder.substitute import expand_instruction
from isobox.errors import InvalidArgumentError
from isobox.images import platform as platforms
from isobox.images.platform import Platform

__all__ = ["PLATFORM_ARGS", "PROXY_ARGS", "BaseImage", "BaseKind", "BuildPlan", "SourceRef", "StageBase",
           "StagePlan", "Step", "plan"]

PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
              "no_proxy", "ALL_PROXY", "all_proxy")
PLATFORM_ARGS = ("TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT", "BUILDPLATFORM", "BUILDOS",
                 "BUILDARCH", "BUILDVARIANT")
# What Docker puts in PATH when the base image sets none (moby/buildkit util/system DefaultPathEnv).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SCRATCH = "scratch"
_OP = "plan build"


class BaseKind(enum.StrEnum):
    IMAGE = "image"
    SCRATCH = "scratch"
    STAGE = "stage"


@dataclass(frozen=True)
class StageBase:
    kind: BaseKind
    image: str = ""  # IMAGE: the reference, variables expanded
    stage: int | None = None  # STAGE: the index of the stage this one is built on
    platform: Platform | None = None  # FROM --platform; None = the build's target platform


@dataclass(frozen=True)
class BaseImage:
    """What a plan needs from a base image's config: its Env and its OnBuild triggers."""

    env: tuple[tuple[str, str], ...] = ()
    onbuild: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceRef:
    """A ``COPY --from`` or ``RUN --mount from=`` value: a stage of this Dockerfile or an image."""

    text: str
    stage: int | None  # None: an image reference


@dataclass(frozen=True)
class Step:
    instruction: ins.Instruction  # variables expanded where the builder expands them (ARG: values resolved)
    source: ins.Instruction  # as written; ``source.origin.text`` is what history shows
    build_args: tuple[tuple[str, str], ...]  # ARGs in scope with a value and no ENV of the same name
    env: tuple[tuple[str, str], ...]  # the environment before this step: base image's, then ENVs
    refs: tuple[SourceRef, ...] = ()
    trigger: bool = False  # an ONBUILD trigger of the base, run before the stage's own instructions


@dataclass(frozen=True)
class StagePlan:
    index: int  # position in the Dockerfile
    name: str  # "" when the stage has no AS name
    origin: Origin  # its FROM line
    base: StageBase
    steps: tuple[Step, ...]
    needs: tuple[int, ...]  # the stages it needs: its base, --from and mount sources

    @property
    def label(self) -> str:
        return self.name or f"stage {self.index}"


@dataclass(frozen=True)
class BuildPlan:
    stages: tuple[StagePlan, ...]  # only what the target needs, in an order that builds each need first
    target: int  # the index of the final stage
    groups: tuple[tuple[int, ...], ...]  # stage indexes; a group needs only earlier groups
    global_args: tuple[tuple[str, str], ...]  # automatic platform ARGs and global ARGs with a value
    proxy_env: tuple[tuple[str, str], ...]
    unused_build_args: tuple[str, ...]
    platform: Platform
    build_platform: Platform

    def stage(self, index: int) -> StagePlan:
        for stage in self.stages:
            if stage.index == index:
                return stage
        raise KeyError(index)

    @property
    def final(self) -> StagePlan:
        return self.stage(self.target)

    @property
    def images(self) -> tuple[str, ...]:
        """Every image the build reads: base images, then images named by --from, without repeats."""
        found = [stage.base.image for stage in self.stages if stage.base.kind == BaseKind.IMAGE]
        found += [ref.text for stage in self.stages for step in stage.steps for ref in step.refs
                  if ref.stage is None]
        return tuple(dict.fromkeys(found))


@dataclass
class _Scope:
    """The variables a stage sees at one point: ENV (base image's first) and ARGs in scope."""

    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)

    def lookup(self) -> dict[str, str]:
        values = {name: value for name, value in self.args.items() if value is not None}
        values.update(self.env)  # ENV always overrides an ARG of the same name
        return values

    def build_args(self) -> tuple[tuple[str, str], ...]:
        return tuple((name, value) for name, value in self.args.items()
                     if value is not None and name not in self.env)

    def copy(self) -> _Scope:
        return _Scope(dict(self.env), dict(self.args))


BaseImageLookup = Callable[[str, Platform | None], BaseImage]


@dataclass
class _Planner:
    dockerfile: Dockerfile
    build_args: dict[str, str]
    globals_: dict[str, str]
    base_image: BaseImageLookup | None
    bases: list[StageBase] = field(default_factory=list)
    bodies: list[list[tuple[ins.Instruction, bool]]] = field(default_factory=list)
    declared: set[str] = field(default_factory=set)
    images: dict[tuple[str, Platform | None], BaseImage] = field(default_factory=dict)

    @property
    def escape(self) -> str:
        return self.dockerfile.escape

    def expand(self, text: str, values: Mapping[str, str], origin: Origin) -> str:
        try:
            return expand_word(text, values, escape=self.escape)
        except ExpansionError as exc:
            raise DockerfileError.at(origin, exc.message, op=_OP) from exc

    def declare_globals(self) -> None:
        for instruction in self.dockerfile.global_args:
            for declaration in instruction.args:
                self.declared.add(declaration.name)
                value = self._arg_value(declaration, self.globals_, instruction.origin, inherit=None)
                if value is not None:
                    self.globals_[declaration.name] = value

    def _arg_value(self, declaration: ins.ArgDeclaration, values: Mapping[str, str], origin: Origin,
                   inherit: Mapping[str, str] | None) -> str | None:
        """A build arg wins; else the default (expanded); else, in a stage, the global value."""
        if declaration.name in self.build_args:
            return self.build_args[declaration.name]
        if declaration.default is not None:
            return self.expand(declaration.default, values, origin)
        return inherit.get(declaration.name) if inherit is not None else None

    def resolve_base(self, stage: Stage) -> StageBase:
        from_ = stage.from_
        image = self.expand(from_.image, self.globals_, from_.origin)
        if not image:
            raise DockerfileError.at(from_.origin, f"base name ({from_.image}) should not be blank", op=_OP)
        platform = None
        if from_.platform:
            text = self.expand(from_.platform, self.globals_, from_.origin)
            if not text:
                raise DockerfileError.at(from_.origin, f"empty platform value from expression {from_.platform}",
                                         op=_OP)
            try:
                platform = platforms.parse(text)
            except InvalidArgumentError as exc:
                raise DockerfileError.at(from_.origin, exc.message, op=_OP) from exc
        named = self._stage_named(image, exclude=stage.index)
        if named is not None:  # a stage name shadows an image of that name, even "scratch"
            return StageBase(BaseKind.STAGE, stage=named.index, platform=platform)
        if image == SCRATCH:
            return StageBase(BaseKind.SCRATCH, platform=platform)
        return StageBase(BaseKind.IMAGE, image=image, platform=platform)

    def _stage_named(self, name: str, *, exclude: int | None = None) -> Stage | None:
        found = self.dockerfile.find_stage(name)
        return None if found is None or found.index == exclude else found

    def ref(self, text: str, origin: Origin, *, index_allowed: bool) -> SourceRef:
        if index_allowed and text.isdecimal():
            index = int(text)
            if index >= len(self.dockerfile.stages):
                raise DockerfileError.at(origin, f"invalid stage index {index}: the Dockerfile has "
                                         f"{len(self.dockerfile.stages)} stages", op=_OP)
            return SourceRef(text, index)
        named = self._stage_named(text)
        return SourceRef(text, named.index if named else None)

    def refs(self, instruction: ins.Instruction) -> tuple[SourceRef, ...]:
        if isinstance(instruction, ins.Copy) and instruction.from_:
            return (self.ref(instruction.from_, instruction.origin, index_allowed=True),)
        if isinstance(instruction, ins.Run):
            return tuple(self.ref(mount.from_, instruction.origin, index_allowed=False)
                         for mount in instruction.mounts if mount.from_)
        return ()

    def body(self, stage: Stage, triggers: list[ins.Instruction]) -> list[tuple[ins.Instruction, bool]]:
        return [(trigger, True) for trigger in triggers] + [(item, False) for item in stage.instructions]

    def parent_triggers(self, stage: Stage) -> list[ins.Instruction]:
        base = self.bases[stage.index]
        if base.stage is None:
            return []
        parent = self.dockerfile.stages[base.stage]
        return [item.trigger for item in parent.instructions if isinstance(item, ins.Onbuild)]

    def dependencies(self) -> list[graph.Dependency]:
        found = []
        for stage in self.dockerfile.stages:
            base = self.bases[stage.index]
            if base.stage is not None:
                found.append(graph.Dependency(stage.index, base.stage, stage.from_.origin))
            for instruction, _trigger in self.bodies[stage.index]:
                found += [graph.Dependency(stage.index, ref.stage, instruction.origin)
                          for ref in self.refs(instruction) if ref.stage is not None]
        return found

    def image_config(self, stage: Stage) -> BaseImage:
        """The Env and OnBuild triggers of the stage's base image (asked once per image and platform)."""
        base = self.bases[stage.index]
        if self.base_image is None or base.kind != BaseKind.IMAGE:
            return BaseImage()
        key = (base.image, base.platform)
        if key not in self.images:
            self.images[key] = self.base_image(base.image, base.platform)
        return self.images[key]

    def resolve(self, stage: Stage, scope: _Scope) -> tuple[StagePlan, _Scope]:
        steps = []
        for instruction, trigger in self.bodies[stage.index]:
            env_before, args_before = tuple(scope.env.items()), scope.build_args()
            expanded = self._apply(instruction, scope)
            steps.append(Step(expanded, instruction, args_before, env_before, self.refs(instruction), trigger))
        base = self.bases[stage.index]
        needs = {ref.stage for step in steps for ref in step.refs if ref.stage is not None}
        if base.stage is not None:
            needs.add(base.stage)
        return StagePlan(stage.index, stage.name, stage.from_.origin, base, tuple(steps), tuple(sorted(needs))), scope

    def _apply(self, instruction: ins.Instruction, scope: _Scope) -> ins.Instruction:
        """The expanded instruction; ARG and ENV also change the scope."""
        values = scope.lookup()
        if isinstance(instruction, ins.Arg):
            resolved = []
            for declaration in instruction.args:
                self.declared.add(declaration.name)
                value = self._arg_value(declaration, values, instruction.origin, inherit=self.globals_)
                scope.args[declaration.name] = value
                resolved.append(ins.ArgDeclaration(declaration.name, value))
            return replace(instruction, args=tuple(resolved))
        try:
            expanded = expand_instruction(instruction, values, self.escape)
        except InvalidArgumentError as exc:
            raise DockerfileError.at(instruction.origin, f"{instruction.keyword}: {exc.message}", op=_OP) from exc
        if isinstance(expanded, ins.Env):
            scope.env.update((pair.key, pair.value) for pair in expanded.pairs)
        return expanded


def _automatic_args(platform: Platform, build_platform: Platform) -> dict[str, str]:
    return {
        "TARGETPLATFORM": str(platform), "TARGETOS": platform.os, "TARGETARCH": platform.architecture,
        "TARGETVARIANT": platform.variant, "BUILDPLATFORM": str(build_platform), "BUILDOS": build_platform.os,
        "BUILDARCH": build_platform.architecture, "BUILDVARIANT": build_platform.variant,
    }


def _initial_scope(planner: _Planner, stage: Stage, scopes: Mapping[int, _Scope]) -> _Scope:
    base = planner.bases[stage.index]
    if base.stage is not None:
        return scopes[base.stage].copy()
    env = dict(planner.image_config(stage).env)
    env.setdefault("PATH", DEFAULT_PATH)
    return _Scope(env)


def _target_index(dockerfile: Dockerfile, target: str | None) -> int:
    if target is None:
        return len(dockerfile.stages) - 1
    found = dockerfile.find_stage(target)
    if found is None:
        names = ", ".join(stage.name for stage in dockerfile.stages if stage.name) or "none are named"
        raise DockerfileError(f"target stage {target!r} could not be found (stages: {names})",
                              path=dockerfile.path, op=_OP)
    return found.index


def _stages_needed(planner: _Planner, target: int) -> tuple[set[int], list[graph.Dependency]]:
    """The stages the target needs; ONBUILD triggers of base images may add needs, so repeat."""
    stages = planner.dockerfile.stages
    image_triggers: dict[int, list[ins.Instruction]] = {}
    while True:
        planner.bodies = [planner.body(stage, planner.parent_triggers(stage) + image_triggers.get(stage.index, []))
                          for stage in stages]
        dependencies = planner.dependencies()
        graph.check(dependencies, [stage.label for stage in stages])
        needed = graph.needed_by(target, dependencies)
        fresh = [index for index in sorted(needed) if index not in image_triggers
                 and planner.bases[index].kind == BaseKind.IMAGE]
        if not fresh:
            return needed, dependencies
        for index in fresh:
            texts = planner.image_config(stages[index]).onbuild
            image_triggers[index] = [decode_trigger(text, stages[index].from_.origin)
                                     for text in texts]


def plan(dockerfile: Dockerfile, *, build_args: Mapping[str, str] | None = None, target: str | None = None,
         platform: Platform | None = None, build_platform: Platform | None = None,
         base_image: BaseImageLookup | None = None) -> BuildPlan:
    """The BuildPlan for ``target`` (default: the last stage). Raises DockerfileError with file and line."""
    build_platform = build_platform or platforms.host()
    platform = platform or build_platform
    given = dict(build_args or {})
    automatic = _automatic_args(platform, build_platform)
    globals_ = {name: given.get(name, value) for name, value in automatic.items()}
    planner = _Planner(dockerfile, given, globals_, base_image)
    planner.declare_globals()
    planner.bases = [planner.resolve_base(stage) for stage in dockerfile.stages]
    target_index = _target_index(dockerfile, target)
    needed, dependencies = _stages_needed(planner, target_index)
    scopes: dict[int, _Scope] = {}
    planned: dict[int, StagePlan] = {}
    order = graph.build_order(needed, dependencies)
    for index in order:
        stage = dockerfile.stages[index]
        planned[index], scopes[index] = planner.resolve(stage, _initial_scope(planner, stage, scopes))
    unused = [name for name in given if name not in planner.declared and name not in PROXY_ARGS
              and name not in automatic]
    return BuildPlan(
        stages=tuple(planned[index] for index in order),
        target=target_index,
        groups=graph.parallel_groups(needed, dependencies),
        global_args=tuple(planner.globals_.items()),
        proxy_env=tuple((name, value) for name, value in given.items() if name in PROXY_ARGS),
        unused_build_args=tuple(unused),
        platform=platform,
        build_platform=build_platform,
    )

