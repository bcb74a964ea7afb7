"""BuildPlan: ARG scoping, variable expansion per instruction, the stage graph and --target (isobox.builder.stages)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import pytest

from isobox.builder import instructions as ins
from isobox.builder.dockerfile import parse
from isobox.builder.mounts import MountType
from isobox.builder.source import DockerfileError
from isobox.builder.stages import DEFAULT_PATH, BaseImage, BaseKind, BuildPlan, SourceRef, Step, plan
from isobox.images.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM_V7 = Platform("linux", "arm", "v7")
T = TypeVar("T", bound=ins.Instruction)


def build(text: str, *, args: Mapping[str, str] | None = None, target: str | None = None,
          platform: Platform | None = None, base_image: Mapping[str, BaseImage] | None = None) -> BuildPlan:
    lookup = None if base_image is None else (lambda image, _platform: base_image.get(image, BaseImage()))
    return plan(parse(text), build_args=args, target=target, platform=platform, build_platform=AMD64,
                base_image=lookup)


def steps(result: BuildPlan, stage: int | None = None) -> tuple[Step, ...]:
    return result.stage(result.target if stage is None else stage).steps


def last(result: BuildPlan, kind: type[T]) -> T:
    """The final stage's last instruction, expanded, checked to be a ``kind``."""
    instruction = steps(result)[-1].instruction
    assert isinstance(instruction, kind)
    return instruction


def env_of(step: Step) -> dict[str, str]:
    return dict(step.env)


def refused(text: str, match: str, *, target: str | None = None,
            base_image: Mapping[str, BaseImage] | None = None) -> DockerfileError:
    with pytest.raises(DockerfileError, match=match) as caught:
        build(text, target=target, base_image=base_image)
    return caught.value


# --- ARG scoping -------------------------------------------------------------------------------------------------

def test_global_arg_is_usable_in_from() -> None:
    result = build("ARG TAG=3.19\nARG IMAGE=alpine\nFROM ${IMAGE}:$TAG\n")
    assert (result.final.base.kind, result.final.base.image) == (BaseKind.IMAGE, "alpine:3.19")


def test_build_arg_replaces_a_global_default() -> None:
    assert build("ARG TAG=3.19\nFROM alpine:$TAG\n", args={"TAG": "3.20"}).final.base.image == "alpine:3.20"


def test_global_arg_is_not_visible_in_a_stage_until_redeclared() -> None:
    result = build("ARG V=1\nFROM a\nWORKDIR /$V\nARG V\nWORKDIR /$V\n")
    assert [step.instruction.path for step in steps(result) if isinstance(step.instruction, ins.Workdir)] == \
        ["/", "/1"]


def test_redeclared_global_arg_takes_the_build_arg() -> None:
    result = build("ARG V=1\nFROM a\nARG V\nWORKDIR /$V\n", args={"V": "2"})
    assert last(result, ins.Workdir).path == "/2"


def test_stage_arg_default_and_build_arg_override() -> None:
    text = "FROM a\nARG NAME=default\nUSER $NAME\n"
    assert last(build(text), ins.User).user == "default"
    assert last(build(text, args={"NAME": "given"}), ins.User).user == "given"


def test_arg_is_in_scope_from_its_line_on() -> None:
    result = build("FROM busybox\nUSER ${username:-some_user}\nARG username\nUSER $username\n",
                   args={"username": "what_user"})
    assert [step.instruction.user for step in steps(result) if isinstance(step.instruction, ins.User)] == \
        ["some_user", "what_user"]


def test_arg_without_default_or_value_is_declared_but_unset() -> None:
    result = build("FROM a\nARG MAYBE\nWORKDIR /${MAYBE-unset}/${MAYBE:+set}\n")
    assert last(result, ins.Workdir).path == "/unset/"
    assert steps(result)[0].instruction == ins.Arg(origin=steps(result)[0].source.origin,
                                                   args=(ins.ArgDeclaration("MAYBE", None),))


def test_arg_scope_ends_with_its_stage() -> None:
    result = build("FROM a AS one\nARG V=1\nFROM b\nWORKDIR /x$V\n")
    assert last(result, ins.Workdir).path == "/x"


def test_stage_built_on_a_stage_inherits_its_args_and_env() -> None:
    result = build("FROM a AS base\nARG V=1\nENV E=e\nFROM base\nWORKDIR /$V/$E\n")
    assert last(result, ins.Workdir).path == "/1/e"
    assert steps(result)[-1].build_args == (("V", "1"),)


def test_env_overrides_an_arg_of_the_same_name() -> None:
    result = build("FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nRUN echo $CONT_IMG_VER\n",
                   args={"CONT_IMG_VER": "v2.0.1"})
    run = steps(result)[-1]
    assert env_of(run)["CONT_IMG_VER"] == "v1.0.0"
    assert run.build_args == ()  # the ENV shadows the ARG in the step's environment and cache key


def test_env_declared_before_an_arg_still_wins() -> None:
    result = build("FROM a\nENV V=from-env\nARG V=from-arg\nWORKDIR /$V\n")
    assert last(result, ins.Workdir).path == "/from-env"


def test_env_can_persist_an_arg_with_a_default() -> None:
    text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\nRUN x\n"
    assert env_of(steps(build(text))[-1])["CONT_IMG_VER"] == "v1.0.0"
    assert env_of(steps(build(text, args={"CONT_IMG_VER": "v2"}))[-1])["CONT_IMG_VER"] == "v2"


def test_one_instruction_sees_values_from_before_it() -> None:
    result = build("FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nRUN x\n")
    assert {key: env_of(steps(result)[-1])[key] for key in ("abc", "def", "ghi")} == \
        {"abc": "bye", "def": "hello", "ghi": "bye"}


def test_global_defaults_may_use_earlier_globals_and_platform_args() -> None:
    result = build("ARG A=x\nARG B=${A}-$TARGETARCH\nFROM img:$B\n", platform=ARM_V7)
    assert result.final.base.image == "img:x-arm"
    assert ("B", "x-arm") in result.global_args


def test_arg_default_expands_with_env_of_the_stage() -> None:
    result = build("FROM a\nENV P=/opt\nARG D=$P/app\nWORKDIR $D\n")
    assert last(result, ins.Workdir).path == "/opt/app"


def test_arg_default_quotes_are_removed_when_declared() -> None:
    result = build('ARG G="global value"\nFROM a\nARG LOCAL="123 456" G\nRUN x\n')
    assert steps(result)[-1].build_args == (("LOCAL", "123 456"), ("G", "global value"))


def test_step_build_args_are_in_declaration_order() -> None:
    result = build("FROM a\nARG B=2\nARG A=1 C\nRUN x\n")
    assert steps(result)[-1].build_args == (("B", "2"), ("A", "1"))


# --- platform and proxy ARGs -------------------------------------------------------------------------------------

def test_automatic_platform_args_are_global() -> None:
    result = build("FROM --platform=$BUILDPLATFORM golang AS build\nARG TARGETOS TARGETARCH TARGETVARIANT\n"
                   "WORKDIR /out/$TARGETOS/$TARGETARCH/$TARGETVARIANT/$BUILDARCH\n", platform=ARM_V7)
    assert result.final.base.platform == AMD64
    assert last(result, ins.Workdir).path == "/out/linux/arm/v7/"
    assert dict(result.global_args)["TARGETPLATFORM"] == "linux/arm/v7"
    assert dict(result.global_args)["BUILDPLATFORM"] == "linux/amd64"


def test_platform_defaults_to_the_build_platform() -> None:
    assert dict(build("FROM a\n").global_args)["TARGETPLATFORM"] == "linux/amd64"


def test_a_build_arg_overrides_an_automatic_platform_arg() -> None:
    result = build("FROM a\nARG TARGETARCH\nWORKDIR /$TARGETARCH\n", args={"TARGETARCH": "riscv64"})
    assert last(result, ins.Workdir).path == "/riscv64"
    assert result.unused_build_args == ()


def test_from_platform_must_be_a_platform() -> None:
    refused("ARG P=\nFROM --platform=$P a\n", "empty platform value")
    refused("FROM --platform=linux/arm/v7/extra a\n", "invalid platform")


def test_proxy_build_args_reach_run_without_an_arg_and_stay_out_of_cache_keys() -> None:
    result = build("FROM a\nRUN apt-get update\n", args={"HTTP_PROXY": "http://proxy:3128", "no_proxy": "local"})
    assert result.proxy_env == (("HTTP_PROXY", "http://proxy:3128"), ("no_proxy", "local"))
    assert steps(result)[-1].build_args == ()
    assert result.unused_build_args == ()


def test_a_declared_proxy_arg_is_an_ordinary_build_arg() -> None:
    result = build("FROM a\nARG HTTP_PROXY\nRUN x\n", args={"HTTP_PROXY": "http://p"})
    assert steps(result)[-1].build_args == (("HTTP_PROXY", "http://p"),)


def test_build_args_no_arg_declares_are_reported_unused() -> None:
    result = build("ARG USED_GLOBALLY\nFROM a\nARG USED\n",
                   args={"USED": "1", "USED_GLOBALLY": "2", "TYPO": "3", "BUILDARCH": "amd64"})
    assert result.unused_build_args == ("TYPO",)


def test_args_declared_only_in_stages_not_built_are_unused() -> None:
    result = build("FROM a AS skipped\nARG ONLY_THERE\nFROM b AS wanted\n", args={"ONLY_THERE": "1"}, target="wanted")
    assert result.unused_build_args == ("ONLY_THERE",)


# --- environment -------------------------------------------------------------------------------------------------

def test_path_gets_dockers_default_when_the_base_sets_none() -> None:
    assert env_of(steps(build("FROM scratch\nRUN x\n"))[0]) == {"PATH": DEFAULT_PATH}


def test_base_image_environment_comes_first_and_is_expandable() -> None:
    base = {"python:3": BaseImage(env=(("PATH", "/usr/local/bin:/usr/bin"), ("LANG", "C.UTF-8")))}
    result = build("FROM python:3\nENV PATH=/venv/bin:$PATH\nRUN x\n", base_image=base)
    assert env_of(steps(result)[-1]) == {"PATH": "/venv/bin:/usr/local/bin:/usr/bin", "LANG": "C.UTF-8"}


def test_step_env_is_the_environment_before_the_step() -> None:
    result = build("FROM scratch\nENV A=1\n")
    assert env_of(steps(result)[0]) == {"PATH": DEFAULT_PATH}


# --- expansion per instruction -----------------------------------------------------------------------------------

EXPAND_ENV = "FROM a\nARG V=val\nARG LIST=\"80 443\"\n"


def expanded(line: str) -> ins.Instruction:
    return steps(build(EXPAND_ENV + line + "\n"))[-1].instruction


def test_copy_expands_sources_destination_chown_and_chmod_not_from_or_exclude() -> None:
    copy = expanded("COPY --chown=$V:$V --chmod=0${V:+644} --exclude=$V ${V}.txt /dst/$V/")
    assert isinstance(copy, ins.Copy)
    assert (copy.sources, copy.dest, copy.chown, copy.chmod, copy.excludes) == \
        (("val.txt",), "/dst/val/", "val:val", "0644", ("$V",))


def test_add_expands_checksum() -> None:
    add = expanded("ADD --checksum=sha256:$V https://x/$V.tgz /opt/")
    assert isinstance(add, ins.Add) and (add.checksum, add.sources) == ("sha256:val", ("https://x/val.tgz",))


def test_inline_files_expand_unless_the_delimiter_is_quoted() -> None:
    result = build(EXPAND_ENV + "COPY <<A <<'B' /d/\nv=$V \"$V\"\nA\nv=$V\nB\n")
    copy = steps(result)[-1].instruction
    assert isinstance(copy, ins.Copy)
    assert [file.content for file in copy.inline] == ['v=val "val"\n', "v=$V\n"]


def test_expose_expands_into_several_ports() -> None:
    expose = expanded("EXPOSE $LIST 8080/udp")
    assert isinstance(expose, ins.Expose) and expose.ports == ("80", "443", "8080/udp")


@pytest.mark.parametrize(("line", "field", "value"), [
    ("USER $V", "user", "val"),
    ("WORKDIR /srv/${V}", "path", "/srv/val"),
    ("STOPSIGNAL SIG${V:+TERM}", "signal", "SIGTERM"),
    ("VOLUME /data/$V", "paths", ("/data/val",)),
    ("ENV K_$V=\"a $V\"", "pairs", (ins.KeyValue("K_val", "a val"),)),
    ("LABEL \"key $V\"=$V", "pairs", (ins.KeyValue("key val", "val"),)),
    ("ENV LEGACY a \\$V $V", "pairs", (ins.KeyValue("LEGACY", "a $V val", legacy=True),)),
])
def test_builder_expanded_instructions(line: str, field: str, value: object) -> None:
    assert getattr(expanded(line), field) == value


@pytest.mark.parametrize("line", ["RUN echo $V", "CMD echo $V", 'ENTRYPOINT ["echo", "$V"]',
                                  "HEALTHCHECK CMD echo $V", 'SHELL ["/bin/$V"]', "ONBUILD WORKDIR /$V"])
def test_shell_run_instructions_are_left_to_the_shell(line: str) -> None:
    result = build(EXPAND_ENV + line + "\n")
    assert steps(result)[-1].instruction == steps(result)[-1].source


def test_run_mount_options_are_expanded() -> None:
    run = expanded("RUN --mount=type=cache,id=cache-$V,target=/c/$V,uid=${UID:-1000} make")
    assert isinstance(run, ins.Run)
    mount = run.mounts[0]
    assert (mount.type, mount.id, mount.target, mount.uid) == (MountType.CACHE, "cache-val", "/c/val", 1000)


def test_a_run_mount_malformed_after_expansion_is_refused_with_its_line() -> None:
    error = refused("FROM a\nARG UID=root\nRUN --mount=type=cache,target=/c,uid=$UID x\n", "not a number")
    assert error.line == 3


def test_source_keeps_the_instruction_as_written() -> None:
    step = steps(build(EXPAND_ENV + "WORKDIR /$V\n"))[-1]
    assert step.source.origin.text == "WORKDIR /$V"
    assert isinstance(step.source, ins.Workdir) and step.source.path == "/$V"


def test_required_variable_error_names_the_line() -> None:
    error = refused("FROM a\n\nWORKDIR ${DIR:?set DIR}\n", "DIR: set DIR")
    assert (error.line, error.op) == (3, "plan build")


def test_backtick_escape_applies_to_expansion() -> None:
    result = build("# escape=`\nFROM a\nARG V=x\nWORKDIR C:\\$V\\`$V\n")
    assert last(result, ins.Workdir).path == "C:\\x\\$V"


def test_from_that_expands_to_nothing_is_refused() -> None:
    refused("ARG IMAGE\nFROM $IMAGE\n", r"base name \(\$IMAGE\) should not be blank")


# --- stages and the graph ----------------------------------------------------------------------------------------

def test_scratch_and_stage_bases() -> None:
    result = build("FROM scratch AS root\nFROM root AS child\n")
    assert result.stage(0).base.kind == BaseKind.SCRATCH
    assert (result.stage(1).base.kind, result.stage(1).base.stage, result.stage(1).needs) == (BaseKind.STAGE, 0, (0,))


def test_stage_names_are_case_insensitive_in_from_and_copy() -> None:
    result = build("FROM alpine AS Builder\nFROM BUILDER AS next\nCOPY --from=bUiLdEr /a /b\n")
    assert result.final.base.stage == 0
    assert steps(result)[-1].refs == (SourceRef("bUiLdEr", 0),)


def test_copy_from_a_stage_index() -> None:
    result = build("FROM a\nFROM b\nCOPY --from=0 /x /y\n")
    assert steps(result)[-1].refs == (SourceRef("0", 0),)
    assert result.final.needs == (0,)


def test_copy_from_an_image_is_no_stage() -> None:
    result = build("FROM a\nCOPY --from=nginx:1.25 /etc/nginx /etc/nginx\n")
    assert steps(result)[-1].refs == (SourceRef("nginx:1.25", None),)
    assert result.images == ("a", "nginx:1.25")


def test_copy_from_a_stage_index_that_does_not_exist_is_refused() -> None:
    error = refused("FROM a\nFROM b\nCOPY --from=7 /x /y\n", "invalid stage index 7")
    assert error.line == 3


def test_run_mount_from_a_stage_is_a_dependency() -> None:
    result = build("FROM a AS deps\nFROM b\nRUN --mount=from=deps,target=/d ls /d\n")
    assert result.final.needs == (0,)
    assert steps(result)[-1].refs == (SourceRef("deps", 0),)


def test_a_stage_named_like_its_own_base_image_uses_the_image() -> None:
    result = build("FROM nginx AS nginx\nRUN x\n")
    assert (result.final.base.kind, result.final.base.image) == (BaseKind.IMAGE, "nginx")


def test_default_target_is_the_last_stage_and_only_needed_stages_are_kept() -> None:
    result = build("FROM a AS unused\nFROM b AS deps\nFROM c\nCOPY --from=deps /x /y\n")
    assert [stage.index for stage in result.stages] == [1, 2]
    assert result.target == 2


def test_target_selects_a_stage_and_what_it_needs() -> None:
    text = "FROM a AS base\nFROM base AS test\nRUN make test\nFROM base AS release\nRUN make\n"
    result = build(text, target="TEST")
    assert ([stage.label for stage in result.stages], result.final.label) == (["base", "test"], "test")


def test_unknown_target_is_refused_with_the_stage_names() -> None:
    error = refused("FROM a AS one\nFROM b AS two\n", r"target stage 'three' could not be found \(stages: one, two\)",
                    target="three")
    assert error.line == 0


def test_build_order_and_parallel_groups() -> None:
    text = ("FROM a AS left\nFROM b AS right\nFROM left AS middle\nCOPY --from=right / /\n"
            "FROM scratch AS final\nCOPY --from=middle / /\nCOPY --from=left / /\n")
    result = build(text)
    assert [stage.label for stage in result.stages] == ["left", "right", "middle", "final"]
    assert result.groups == ((0, 1), (2,), (3,))


def test_independent_stages_build_in_one_group() -> None:
    result = build("FROM a AS x\nFROM b AS y\nFROM c\nCOPY --from=x / /x\nCOPY --from=y / /y\n")
    assert result.groups == ((0, 1), (2,))


def test_stages_copying_from_each_other_are_refused_as_a_cycle() -> None:
    error = refused("FROM a AS one\nCOPY --from=two / /\nFROM b AS two\nCOPY --from=one / /\n",
                    "stages depend on each other in a cycle: one → two → one")
    assert error.line == 4  # the reference that closes the cycle


def test_a_stage_copying_from_itself_is_a_cycle() -> None:
    refused("FROM a AS self\nCOPY --from=self / /\n", "cycle: self → self")


def test_copy_from_a_later_stage_is_refused() -> None:
    error = refused("FROM a AS early\nCOPY --from=late / /\nFROM b AS late\n",
                    "late is defined after early: a stage can only use stages defined before it")
    assert error.line == 2


def test_from_a_later_stage_is_refused() -> None:
    error = refused("FROM later AS first\nFROM alpine AS later\n", "later is defined after first")
    assert error.line == 1


def test_graph_errors_in_stages_not_built_are_still_refused() -> None:
    refused("FROM a AS one\nCOPY --from=one / /\nFROM b AS two\n", "cycle", target="two")


# --- ONBUILD -----------------------------------------------------------------------------------------------------

def test_onbuild_of_a_parent_stage_runs_first_in_the_child() -> None:
    result = build("FROM a AS base\nONBUILD RUN echo $V\nONBUILD COPY --from=assets / /srv\n"
                   "FROM b AS assets\nFROM base\nRUN make\n")
    child = result.final
    assert [(step.trigger, step.instruction.keyword) for step in child.steps] == \
        [(True, "RUN"), (True, "COPY"), (False, "RUN")]
    assert child.needs == (0, 1)
    assert isinstance(result.stage(0).steps[0].instruction, ins.Onbuild)  # stored, not run, in the parent


def test_onbuild_triggers_do_not_reach_grandchildren() -> None:
    result = build("FROM a AS one\nONBUILD RUN x\nFROM one AS two\nFROM two\nRUN y\n")
    assert [step.trigger for step in result.final.steps] == [False]
    assert [step.trigger for step in result.stage(1).steps] == [True]


def test_onbuild_triggers_of_a_base_image_run_first() -> None:
    base = {"builder:1": BaseImage(onbuild=("COPY . /app/src", "RUN make -C /app/src"))}
    result = build("FROM builder:1\nCMD run\n", base_image=base)
    assert [(step.trigger, step.source.origin.text) for step in result.final.steps] == \
        [(True, "COPY . /app/src"), (True, "RUN make -C /app/src"), (False, "CMD run")]
    assert result.final.steps[0].source.origin.start_line == 1


def test_onbuild_trigger_of_a_base_image_may_need_a_stage() -> None:
    base = {"img": BaseImage(onbuild=("COPY --from=assets /a /a",))}
    result = build("FROM scratch AS assets\nFROM img\n", base_image=base)
    assert result.final.needs == (0,)
    assert [stage.index for stage in result.stages] == [0, 1]


def test_bad_onbuild_trigger_of_a_base_image_names_the_from_line() -> None:
    base = {"img": BaseImage(onbuild=("FROM other",))}
    error = refused("FROM a\nFROM img\n", "ONBUILD trigger 'FROM other' of the base image", base_image=base)
    assert error.line == 2


def test_base_image_is_asked_once_per_image_and_platform() -> None:
    asked: list[tuple[str, Platform | None]] = []

    def lookup(image: str, platform: Platform | None) -> BaseImage:
        asked.append((image, platform))
        return BaseImage(env=(("FROM_IMAGE", image),))

    result = plan(parse("FROM img AS one\nFROM img AS two\nCOPY --from=one / /\nRUN x\n"), build_platform=AMD64,
                  base_image=lookup)
    assert asked == [("img", None)]
    assert env_of(steps(result)[-1])["FROM_IMAGE"] == "img"


def test_a_stage_named_scratch_shadows_the_empty_image() -> None:
    result = build("FROM alpine AS scratch\nFROM scratch\n")
    assert (result.final.base.kind, result.final.base.stage) == (BaseKind.STAGE, 0)


def test_package_surface_resolves() -> None:
    import isobox.builder

    for name in isobox.builder.__all__:
        assert getattr(isobox.builder, name) is not None, name
    for name in ins.__all__:
        assert getattr(ins, name) is not None, name
