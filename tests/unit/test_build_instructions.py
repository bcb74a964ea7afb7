"""Every Dockerfile instruction parsed into its typed value, both forms, every flag, and the refusals."""

from __future__ import annotations

from typing import TypeVar

import pytest

from isobox.builder import instructions as ins
from isobox.builder.dockerfile import parse
from isobox.builder.lexer import Heredoc
from isobox.builder.mounts import MountType, NetworkMode, SecurityMode
from isobox.builder.source import DockerfileError, Origin
from isobox.errors import InvalidArgumentError

T = TypeVar("T", bound=ins.Instruction)


def one(line: str) -> ins.Instruction:
    """The first instruction after a FROM line."""
    return parse(f"FROM scratch\n{line}\n").stages[0].instructions[0]


def one_of(kind: type[T], line: str) -> T:
    instruction = one(line)
    assert isinstance(instruction, kind)
    return instruction


def refused(text: str, match: str) -> DockerfileError:
    with pytest.raises(DockerfileError, match=match) as caught:
        parse(text)
    return caught.value


def shell(command: str) -> ins.CommandLine:
    return ins.CommandLine(ins.CommandForm.SHELL, (command,))


def exec_form(*argv: str) -> ins.CommandLine:
    return ins.CommandLine(ins.CommandForm.EXEC, argv)


# --- the file as a whole -----------------------------------------------------------------------------------------

def test_instruction_names_are_case_insensitive() -> None:
    dockerfile = parse("from alpine AS Build\nrun echo hi\nCoPy a b\n")
    assert dockerfile.stages[0].name == "build"
    assert [type(item) for item in dockerfile.stages[0].instructions] == [ins.Run, ins.Copy]


def test_each_instruction_keeps_its_lines_and_text() -> None:
    dockerfile = parse("FROM a\n\nRUN one \\\n  two\nCOPY <<EOF /x\nbody\nEOF\n", path="app/Dockerfile")
    run, copy = dockerfile.stages[0].instructions
    assert run.origin == Origin("app/Dockerfile", 3, 4, "RUN one   two")
    assert copy.origin == Origin("app/Dockerfile", 5, 7, "COPY <<EOF /x")
    assert str(run.origin) == "app/Dockerfile:3-4"


def test_global_args_come_before_the_first_from() -> None:
    dockerfile = parse("ARG A=1\nARG B\nFROM x\nARG A\n")
    assert [arg.args for arg in dockerfile.global_args] == [(ins.ArgDeclaration("A", "1"),),
                                                            (ins.ArgDeclaration("B"),)]
    assert dockerfile.stages[0].instructions == (ins.Arg(origin=Origin("Dockerfile", 4, 4, "ARG A"),
                                                          args=(ins.ArgDeclaration("A"),)),)


def test_only_arg_may_come_before_from() -> None:
    error = refused("ARG A\nRUN echo\nFROM x\n", "RUN comes before the first FROM")
    assert error.line == 2


def test_empty_file_is_refused() -> None:
    refused("", "the Dockerfile is empty")
    refused("  \n\n", "the Dockerfile is empty")


def test_a_file_of_comments_is_refused() -> None:
    refused("# just a comment\n\n# another\n", "has no instructions")


def test_a_file_without_from_is_refused() -> None:
    error = refused("ARG A=1\nARG B=2\n", "no FROM instruction")
    assert error.line == 2


def test_unknown_instruction_is_refused_with_its_line_and_a_suggestion() -> None:
    error = refused("FROM a\nRUN ok\nCOPPY a b\n", r"unknown instruction: COPPY \(did you mean COPY\?\)")
    assert (error.line, error.path) == (3, "Dockerfile")
    assert str(error).startswith("parse Dockerfile: Dockerfile:3: ")


def test_dockerfile_error_is_an_invalid_argument_error() -> None:
    assert issubclass(DockerfileError, InvalidArgumentError)


def test_duplicate_stage_names_are_refused_ignoring_case() -> None:
    error = refused("FROM a AS one\nFROM b AS ONE\n", "duplicate stage name 'one' .first used on line 1")
    assert error.line == 2


def test_maintainer_is_accepted_with_a_deprecation_warning() -> None:
    dockerfile = parse("FROM a\nMAINTAINER Jane <jane@example.com>\n")
    assert dockerfile.stages[0].instructions[0] == ins.Maintainer(
        origin=Origin("Dockerfile", 2, 2, "MAINTAINER Jane <jane@example.com>"), name="Jane <jane@example.com>")
    assert "deprecated" in dockerfile.warnings[0].message


def test_instructions_iterates_in_file_order() -> None:
    dockerfile = parse("ARG V\nFROM a\nRUN x\nFROM b\nCMD y\n")
    assert [item.keyword for item in dockerfile.instructions()] == ["ARG", "FROM", "RUN", "FROM", "CMD"]


# --- FROM --------------------------------------------------------------------------------------------------------

def test_from_image_name_and_platform() -> None:
    from_ = parse("FROM --platform=$BUILDPLATFORM golang:1.22 as Builder\n").stages[0].from_
    assert (from_.image, from_.name, from_.platform) == ("golang:1.22", "builder", "$BUILDPLATFORM")


@pytest.mark.parametrize(("line", "match"), [
    ("FROM", "one or three arguments"),
    ("FROM a b", "one or three arguments"),
    ("FROM a AS", "one or three arguments"),
    ("FROM a FOR b", "one or three arguments"),
    ("FROM a AS 1st", "invalid name for build stage: '1st'"),
    ("FROM a AS my/stage", "invalid name for build stage"),
    ("FROM --platfrom=linux/amd64 a", "unknown flag: --platfrom"),
    ("FROM --platform a", "missing a value on flag: --platform"),
])
def test_malformed_from_is_refused(line: str, match: str) -> None:
    refused(line + "\n", match)


# --- RUN ---------------------------------------------------------------------------------------------------------

def test_run_shell_form_keeps_the_rest_of_the_line() -> None:
    assert one_of(ins.Run, "RUN  echo 'a  b' && ls").command == shell("echo 'a  b' && ls")


def test_run_exec_form_is_a_json_array() -> None:
    assert one_of(ins.Run, 'RUN ["/bin/echo", "a b", "\\u00e9"]').command == exec_form("/bin/echo", "a b", "é")


@pytest.mark.parametrize("line", ["RUN ['echo', 'x']", 'RUN ["echo", "unterminated]', 'RUN [ "a", "b"'])
def test_run_text_that_is_not_valid_json_is_shell_form(line: str) -> None:
    assert one_of(ins.Run, line).command == shell(line[4:])


def test_json_array_of_non_strings_is_refused() -> None:
    refused('FROM a\nRUN ["echo", 1]\n', "arrays must be comprised of strings only")
    refused('FROM a\nCMD [ "echo", [ "nested" ] ]\n', "arrays must be comprised of strings only")


def test_run_without_a_command_is_refused() -> None:
    refused("FROM a\nRUN\n", "RUN requires a command")
    refused("FROM a\nRUN []\n", "RUN requires a command")


def test_run_flags_network_and_security() -> None:
    run = one("RUN --network=none --security=insecure make")
    assert isinstance(run, ins.Run)
    assert (run.network, run.security, run.command) == (NetworkMode.NONE, SecurityMode.INSECURE, shell("make"))
    assert one_of(ins.Run, "RUN make").network == NetworkMode.DEFAULT


@pytest.mark.parametrize(("line", "match"), [
    ("RUN --network=bridge x", "invalid network mode 'bridge'"),
    ("RUN --security=relaxed x", "security 'relaxed' is not valid"),
    ("RUN --network x", "missing a value on flag: --network"),
    ("RUN --network=host --network=none x", "duplicate flag specified: --network"),
    ("RUN --privileged x", "unknown flag: --privileged"),
    ("RUN --mount=type=nfs x", "unknown mount type 'nfs'"),
])
def test_bad_run_flags_are_refused(line: str, match: str) -> None:
    refused(f"FROM a\n{line}\n", match)


def test_run_mounts_are_parsed_in_order() -> None:
    run = one("RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok make")
    assert isinstance(run, ins.Run)
    assert [(mount.type, mount.target, mount.id) for mount in run.mounts] == [
        (MountType.CACHE, "/root/.cache", ""), (MountType.SECRET, "", "tok")]


def test_run_heredoc_is_attached() -> None:
    run = parse("FROM a\nRUN <<EOF\nset -e\necho hi\nEOF\n").stages[0].instructions[0]
    assert isinstance(run, ins.Run)
    assert run.command == shell("<<EOF")
    assert run.heredocs == (Heredoc("EOF", "set -e\necho hi\n"),)


def test_run_exec_form_has_no_heredocs() -> None:
    run = parse('FROM a\nRUN ["cat", "<<EOF"]\n').stages[0].instructions[0]
    assert isinstance(run, ins.Run) and run.heredocs == ()


def test_flags_end_at_double_dash() -> None:
    copy = one("COPY --link -- --weird-name /dst")
    assert isinstance(copy, ins.Copy)
    assert (copy.link, copy.sources, copy.dest) == (True, ("--weird-name",), "/dst")


def test_flag_values_may_be_quoted_and_escaped() -> None:
    copy = one('COPY --chown="app user" --chmod=07\\55 a b')
    assert isinstance(copy, ins.Copy)
    assert (copy.chown, copy.chmod) == ("app user", "0755")


# --- CMD, ENTRYPOINT, SHELL --------------------------------------------------------------------------------------

def test_cmd_and_entrypoint_in_both_forms() -> None:
    assert one("CMD nginx -g 'daemon off;'") == ins.Cmd(
        origin=Origin("Dockerfile", 2, 2, "CMD nginx -g 'daemon off;'"), command=shell("nginx -g 'daemon off;'"))
    assert one_of(ins.Entrypoint, 'ENTRYPOINT ["/entry.sh", "--flag"]').command == exec_form("/entry.sh", "--flag")
    assert one_of(ins.Entrypoint, "ENTRYPOINT exec top -b").command == shell("exec top -b")


def test_empty_exec_form_clears_cmd() -> None:
    assert one_of(ins.Cmd, "CMD []").command == exec_form()
    assert one_of(ins.Cmd, 'CMD [""]').command == exec_form("")


def test_cmd_takes_no_flags() -> None:
    refused('FROM a\nCMD --verbose ["x"]\n', "CMD: unknown flag: --verbose")


def test_shell_takes_a_json_array_only() -> None:
    assert one('SHELL ["/bin/bash", "-eo", "pipefail", "-c"]') == ins.Shell(
        origin=Origin("Dockerfile", 2, 2, 'SHELL ["/bin/bash", "-eo", "pipefail", "-c"]'),
        argv=("/bin/bash", "-eo", "pipefail", "-c"))
    refused("FROM a\nSHELL /bin/bash -c\n", "SHELL requires the arguments to be in JSON form")
    refused("FROM a\nSHELL []\n", "SHELL requires at least one argument")


# --- ENV, LABEL, ARG ---------------------------------------------------------------------------------------------

def pairs(line: str) -> list[tuple[str, str, bool]]:
    instruction = one(line)
    assert isinstance(instruction, ins.Env | ins.Label)
    return [(pair.key, pair.value, pair.legacy) for pair in instruction.pairs]


def test_env_key_value_pairs_keep_quotes_for_expansion() -> None:
    assert pairs('ENV A=1 B="two words" C=three\\ words D=') == [
        ("A", "1", False), ("B", '"two words"', False), ("C", "three\\ words", False), ("D", "", False)]


def test_env_legacy_form_takes_the_rest_of_the_line() -> None:
    assert pairs("ENV PATH /usr/local/bin:$PATH and more") == [("PATH", "/usr/local/bin:$PATH and more", True)]


def test_env_pairs_across_continuation_lines() -> None:
    assert pairs('ENV A=1 \\\n    B="x \\\n y"') == [("A", "1", False), ("B", '"x  y"', False)]


@pytest.mark.parametrize(("line", "match"), [
    ("ENV", "ENV requires at least one argument"),
    ("ENV PATH", "ENV must have two arguments"),
    ("ENV A=1 B", "can't find = in 'B'"),
    ("ENV =value", "ENV names can not be blank"),
    ("LABEL", "LABEL requires at least one argument"),
    ("LABEL a=1 =2", "LABEL names can not be blank"),
    ("ENV --x=1 A=1", "ENV: unknown flag: --x"),
])
def test_malformed_env_and_label_are_refused(line: str, match: str) -> None:
    refused(f"FROM a\n{line}\n", match)


def test_label_both_forms() -> None:
    assert pairs('LABEL org.opencontainers.image.title="My App" version=1') == [
        ("org.opencontainers.image.title", '"My App"', False), ("version", "1", False)]
    assert pairs("LABEL maintainer Jane Doe") == [("maintainer", "Jane Doe", True)]


def test_arg_with_and_without_defaults_several_per_line() -> None:
    arg = one('ARG A B=2 C="x y" D=')
    assert isinstance(arg, ins.Arg)
    assert arg.args == (ins.ArgDeclaration("A"), ins.ArgDeclaration("B", "2"), ins.ArgDeclaration("C", '"x y"'),
                        ins.ArgDeclaration("D", ""))


def test_malformed_arg_is_refused() -> None:
    refused("FROM a\nARG\n", "ARG requires at least one argument")
    refused("FROM a\nARG =x\n", "ARG names can not be blank")


# --- EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL -------------------------------------------------------------------

def test_expose_takes_words() -> None:
    assert one_of(ins.Expose, "EXPOSE 80 443/tcp   53/udp").ports == ("80", "443/tcp", "53/udp")
    refused("FROM a\nEXPOSE\n", "EXPOSE requires at least one argument")


def test_volume_json_or_words() -> None:
    assert one_of(ins.Volume, 'VOLUME ["/data", "/var/log app"]').paths == ("/data", "/var/log app")
    assert one_of(ins.Volume, "VOLUME /a /b").paths == ("/a", "/b")
    refused("FROM a\nVOLUME\n", "VOLUME requires at least one argument")
    refused('FROM a\nVOLUME ["/a", " "]\n', "VOLUME specified can not be an empty string")


@pytest.mark.parametrize(("line", "field", "value"), [
    ("USER app:staff", "user", "app:staff"),
    ("WORKDIR /srv/my app", "path", "/srv/my app"),
    ("STOPSIGNAL SIGQUIT", "signal", "SIGQUIT"),
])
def test_single_argument_instructions_take_the_rest_of_the_line(line: str, field: str, value: str) -> None:
    assert getattr(one(line), field) == value


@pytest.mark.parametrize("keyword", ["USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"])
def test_single_argument_instructions_need_their_argument(keyword: str) -> None:
    refused(f"FROM a\n{keyword}\n", f"{keyword} requires exactly one argument")


# --- HEALTHCHECK -------------------------------------------------------------------------------------------------

def test_healthcheck_none() -> None:
    check = one("HEALTHCHECK none")
    assert isinstance(check, ins.Healthcheck)
    assert (check.kind, check.command, check.test) == (ins.HealthcheckKind.NONE, None, ("NONE",))


def test_healthcheck_options_then_shell_command() -> None:
    check = one("HEALTHCHECK --interval=1m30s --timeout=3s --start-period=500ms --start-interval=2s "
                "--retries=4 CMD curl -f http://localhost/ || exit 1")
    assert isinstance(check, ins.Healthcheck)
    assert (check.interval_ns, check.timeout_ns, check.start_period_ns, check.start_interval_ns, check.retries) == \
        (90 * 10**9, 3 * 10**9, 500 * 10**6, 2 * 10**9, 4)
    assert check.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")


def test_healthcheck_exec_form_and_defaults() -> None:
    check = one('HEALTHCHECK CMD ["/bin/check", "--quiet"]')
    assert isinstance(check, ins.Healthcheck)
    assert check.test == ("CMD", "/bin/check", "--quiet")
    assert (check.interval_ns, check.timeout_ns, check.retries) == (0, 0, 0)


def test_healthcheck_zero_durations_mean_default() -> None:
    check = one("HEALTHCHECK --interval=0s --timeout=0 CMD true")
    assert isinstance(check, ins.Healthcheck) and (check.interval_ns, check.timeout_ns) == (0, 0)


@pytest.mark.parametrize(("line", "match"), [
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK NONE extra", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CONNECT tcp 80", "unknown type 'CONNECT' in HEALTHCHECK"),
    ("HEALTHCHECK --interval=5 CMD true", "not a duration"),
    ("HEALTHCHECK --interval=50us CMD true", "cannot be less than 1ms"),
    ("HEALTHCHECK --timeout=-1s CMD true", "cannot be less than 1ms"),
    ("HEALTHCHECK --retries=-1 CMD true", "cannot be negative"),
    ("HEALTHCHECK --retries=three CMD true", "is not a number"),
    ("HEALTHCHECK --interval=5s NONE", "HEALTHCHECK NONE takes no options"),
    ("HEALTHCHECK --every=5s CMD true", "unknown flag: --every"),
])
def test_malformed_healthcheck_is_refused(line: str, match: str) -> None:
    refused(f"FROM a\n{line}\n", match)


# --- ONBUILD -----------------------------------------------------------------------------------------------------

def test_onbuild_wraps_another_instruction() -> None:
    onbuild = one("ONBUILD RUN --network=none make install")
    assert isinstance(onbuild, ins.Onbuild)
    assert isinstance(onbuild.trigger, ins.Run)
    assert onbuild.trigger.network == NetworkMode.NONE
    assert onbuild.trigger.origin.text == "RUN --network=none make install"
    assert onbuild.expression == "RUN --network=none make install"


def test_onbuild_expression_carries_heredoc_bodies() -> None:
    onbuild = parse("FROM a\nonbuild COPY <<EOF /etc/motd\nhello\nEOF\n").stages[0].instructions[0]
    assert isinstance(onbuild, ins.Onbuild) and isinstance(onbuild.trigger, ins.Copy)
    assert onbuild.trigger.inline == (ins.InlineFile("EOF", "hello\n"),)
    assert onbuild.expression == "COPY <<EOF /etc/motd\nhello\nEOF"


@pytest.mark.parametrize(("line", "match"), [
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN x", "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM alpine", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD FETCH x", "unknown instruction: FETCH"),
    ("ONBUILD COPY onlyone", "COPY requires at least two arguments"),
])
def test_bad_onbuild_triggers_are_refused(line: str, match: str) -> None:
    refused(f"FROM a\n{line}\n", match)


# --- COPY and ADD ------------------------------------------------------------------------------------------------

def test_copy_words_sources_and_destination() -> None:
    copy = one("COPY a.txt dir/ /dest/")
    assert isinstance(copy, ins.Copy)
    assert (copy.sources, copy.dest, copy.from_, copy.link) == (("a.txt", "dir/"), "/dest/", "", False)


def test_copy_json_form_allows_spaces_in_paths() -> None:
    copy = one('COPY ["my file", "/my dir/"]')
    assert isinstance(copy, ins.Copy) and (copy.sources, copy.dest) == (("my file",), "/my dir/")


def test_copy_every_flag() -> None:
    copy = one("COPY --from=build --chown=1000:1000 --chmod=0644 --link --parents --exclude=*.md "
               "--exclude=tests/ src/ /app/")
    assert isinstance(copy, ins.Copy)
    assert (copy.from_, copy.chown, copy.chmod, copy.link, copy.parents, copy.excludes) == \
        ("build", "1000:1000", "0644", True, True, ("*.md", "tests/"))


def test_copy_boolean_flag_values() -> None:
    assert one_of(ins.Copy, "COPY --link=false a b").link is False
    assert one_of(ins.Copy, "COPY --link=TRUE a b").link is True
    refused("FROM a\nCOPY --link=yes a b\n", "expecting boolean value for flag --link, not: yes")
    refused("FROM a\nCOPY --link= a b\n", "missing a value on flag: --link")


def test_copy_heredoc_sources_become_inline_files() -> None:
    copy = parse("FROM a\nCOPY <<-conf.ini <<'run.sh' plain.txt /etc/app/\n\t[a]\n\tx=$HOME\nconf.ini\n"
                 "echo $HOME\nrun.sh\n").stages[0].instructions[0]
    assert isinstance(copy, ins.Copy)
    assert copy.sources == ("plain.txt",)
    assert copy.inline == (ins.InlineFile("conf.ini", "[a]\nx=$HOME\n", True),
                           ins.InlineFile("run.sh", "echo $HOME\n", False))


def test_copy_heredoc_as_destination_is_refused() -> None:
    refused("FROM a\nCOPY a <<EOF\nx\nEOF\n", "COPY cannot accept a heredoc as a destination")


def test_copy_from_with_a_variable_is_refused() -> None:
    refused("FROM a\nCOPY --from=$STAGE /a /b\n", "COPY --from does not take variables")
    refused("FROM a\nCOPY --from=${STAGE:-x} /a /b\n", "COPY --from does not take variables")


@pytest.mark.parametrize(("line", "match"), [
    ("COPY a", "COPY requires at least two arguments"),
    ("COPY", "COPY requires at least two arguments"),
    ('ADD ["a"]', "ADD requires at least two arguments"),
    ("COPY --checksum=sha256:0 a b", "unknown flag: --checksum"),
    ("ADD --from=x a b", "unknown flag: --from"),
    ("ADD --parents a b", "unknown flag: --parents"),
    ("COPY --chown a b", "missing a value on flag: --chown"),
])
def test_malformed_copy_and_add_are_refused(line: str, match: str) -> None:
    refused(f"FROM a\n{line}\n", match)


def test_add_every_flag() -> None:
    add = one("ADD --chown=app --chmod=755 --link --keep-git-dir=true --checksum=sha256:abc --unpack=false "
              "--exclude=.git https://example.com/x.tar.gz /opt/")
    assert isinstance(add, ins.Add)
    assert (add.chown, add.chmod, add.link, add.keep_git_dir, add.checksum, add.unpack, add.excludes) == \
        ("app", "755", True, True, "sha256:abc", False, (".git",))
    assert (add.sources, add.dest) == (("https://example.com/x.tar.gz",), "/opt/")


def test_add_optional_flags_stay_unset_when_absent() -> None:
    add = one("ADD a.tar /x/")
    assert isinstance(add, ins.Add) and (add.keep_git_dir, add.unpack) == (None, None)


# --- escape directive --------------------------------------------------------------------------------------------

def test_backtick_escape_keeps_windows_paths_and_continues_lines() -> None:
    dockerfile = parse("# escape=`\nFROM mcr.microsoft.com/windows/servercore\n"
                       "COPY testfile.txt c:\\\nRUN dir c:\\ `\n  /b\n")
    copy, run = dockerfile.stages[0].instructions
    assert isinstance(copy, ins.Copy) and copy.dest == "c:\\"
    assert isinstance(run, ins.Run) and run.command == shell("dir c:\\   /b")
    assert dockerfile.escape == "`"
