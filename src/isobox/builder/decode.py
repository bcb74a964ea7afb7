"""One logical Dockerfile line → one typed instruction, with Docker's argument rules and messages.

Argument styles (as Docker's parser has them): FROM, EXPOSE split at whitespace; RUN, CMD,
ENTRYPOINT, SHELL and HEALTHCHECK CMD are a JSON array (exec form) or the rest of the line (shell
form); COPY, ADD, VOLUME are a JSON array or whitespace-separated words; ENV and LABEL are
``key=value`` words (quotes kept) or the legacy ``key value``; ARG is ``name[=default]`` words; USER,
WORKDIR, STOPSIGNAL and MAINTAINER take the rest of the line as their one argument.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation

from isobox.builder import instructions as ins
from isobox.builder.expand import ExpansionError, expand_word
from isobox.builder.flags import FlagError, FlagKind, Flags, parse_flags
from isobox.builder.lexer import Heredoc, LogicalLine, parse_heredoc_word, scan
from isobox.builder.mounts import NetworkMode, SecurityMode, parse_mount
from isobox.builder.source import DockerfileError, Origin
from isobox.builder.words import NotStringArrayError, parse_json_array, parse_words, split_command, split_whitespace
from isobox.errors import InvalidArgumentError

__all__ = ["decode", "decode_trigger", "parse_go_duration"]

_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*\Z")
_ONBUILD_PREFIX = re.compile(r"(?i)^\s*ONBUILD\s*")
_DURATION_UNITS_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                      "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_COPY_FLAGS = {"from": FlagKind.STRING, "chown": FlagKind.STRING, "chmod": FlagKind.STRING,
               "link": FlagKind.BOOL, "parents": FlagKind.BOOL, "exclude": FlagKind.STRINGS}
_ADD_FLAGS = {"chown": FlagKind.STRING, "chmod": FlagKind.STRING, "link": FlagKind.BOOL,
              "keep-git-dir": FlagKind.BOOL, "checksum": FlagKind.STRING, "unpack": FlagKind.BOOL,
              "exclude": FlagKind.STRINGS}
_RUN_FLAGS = {"mount": FlagKind.STRINGS, "network": FlagKind.STRING, "security": FlagKind.STRING}
_HEALTHCHECK_FLAGS = {name: FlagKind.STRING for name in
                      ("interval", "timeout", "start-period", "start-interval", "retries")}


@dataclass(frozen=True)
class _Request:
    keyword: str  # upper case
    flag_words: list[str]
    rest: str
    text: str  # the whole logical line
    heredocs: tuple[Heredoc, ...]
    origin: Origin
    escape: str

    def fail(self, reason: str) -> DockerfileError:
        return DockerfileError.at(self.origin, reason)

    def flags(self, allowed: dict[str, FlagKind] | None = None) -> Flags:
        try:
            return parse_flags(self.flag_words, allowed or {})
        except FlagError as exc:
            raise self.fail(f"{self.keyword}: {exc}") from exc

    def command(self) -> ins.CommandLine:
        """The exec form (a JSON array of strings) or the shell form (the rest of the line)."""
        argv = self._json(self.rest)
        if argv is not None:
            return ins.CommandLine(ins.CommandForm.EXEC, tuple(argv))
        return ins.CommandLine(ins.CommandForm.SHELL, (self.rest,) if self.rest else ())

    def json_or_words(self) -> tuple[list[str], bool]:
        argv = self._json(self.rest)
        return (argv, True) if argv is not None else (split_whitespace(self.rest), False)

    def _json(self, text: str) -> list[str] | None:
        try:
            return parse_json_array(text)
        except NotStringArrayError as exc:
            raise self.fail(f"{self.keyword}: {exc}") from exc

    def one_argument(self) -> str:
        if not self.rest:
            raise self.fail(f"{self.keyword} requires exactly one argument")
        return self.rest


def decode(line: LogicalLine, *, path: str, escape: str) -> ins.Instruction:
    origin = Origin(path, line.start_line, line.end_line, line.text.strip())
    return _decode(line.text, line.heredocs, origin, escape)


def decode_trigger(text: str, origin: Origin) -> ins.Instruction:
    """An ONBUILD trigger stored in a base image's config, as the instruction it runs.

    Errors and the instruction's origin point at ``origin`` (the FROM line that pulls it in); the
    text is read with the default escape character, as Docker does.
    """
    try:
        lines = scan(text, path=origin.path).lines
        if len(lines) != 1:
            raise DockerfileError("an ONBUILD trigger must be exactly one instruction", path=origin.path)
        instruction = _decode(lines[0].text, lines[0].heredocs,
                              Origin(origin.path, origin.start_line, origin.end_line, lines[0].text.strip()), "\\")
        if instruction.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(f"{instruction.keyword} isn't allowed as an ONBUILD trigger", path=origin.path)
    except DockerfileError as exc:
        raise DockerfileError.at(origin, f"ONBUILD trigger {text!r} of the base image: {exc.reason}") from exc
    return instruction


def _decode(text: str, heredocs: tuple[Heredoc, ...], origin: Origin, escape: str) -> ins.Instruction:
    word, flag_words, rest = split_command(text, escape)
    request = _Request(word.upper(), flag_words, rest, text, heredocs, origin, escape)
    decoder = _DECODERS.get(request.keyword)
    if decoder is None:
        hint = difflib.get_close_matches(request.keyword, _DECODERS, n=1)
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        raise DockerfileError.at(origin, f"unknown instruction: {word}{suggestion}")
    return decoder(request)


def _from(req: _Request) -> ins.From:
    args = split_whitespace(req.rest)
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise req.fail(f"invalid name for build stage: {args[2]!r}, name can't start with a number or "
                           "contain symbols")
    elif len(args) != 1:
        raise req.fail("FROM requires either one or three arguments (FROM image [AS name])")
    flags = req.flags({"platform": FlagKind.STRING})
    return ins.From(origin=req.origin, image=args[0], name=name, platform=flags.string("platform"))


def _run(req: _Request) -> ins.Run:
    flags = req.flags(_RUN_FLAGS)
    command = req.command()
    if not command.args:
        raise req.fail("RUN requires a command")
    try:
        mounts = tuple(parse_mount(spec) for spec in flags.repeated("mount"))
    except InvalidArgumentError as exc:
        raise req.fail(exc.message) from exc
    try:
        network = NetworkMode(flags.string("network", NetworkMode.DEFAULT))
    except ValueError:
        raise req.fail(f"invalid network mode {flags.string('network')!r} (use default, none or host)") from None
    try:
        security = SecurityMode(flags.string("security", SecurityMode.SANDBOX))
    except ValueError:
        raise req.fail(f"security {flags.string('security')!r} is not valid (use sandbox or insecure)") from None
    return ins.Run(origin=req.origin, command=command, heredocs=req.heredocs, mounts=mounts, network=network,
                   security=security)


def _cmd(req: _Request) -> ins.Cmd:
    req.flags()
    return ins.Cmd(origin=req.origin, command=req.command())


def _entrypoint(req: _Request) -> ins.Entrypoint:
    req.flags()
    return ins.Entrypoint(origin=req.origin, command=req.command())


def _pairs(req: _Request) -> tuple[ins.KeyValue, ...]:
    words = parse_words(req.rest, req.escape)
    if not words:
        raise req.fail(f"{req.keyword} requires at least one argument")
    if "=" not in words[0]:
        parts = split_whitespace(req.rest)
        if len(parts) < 2:
            raise req.fail(f"{req.keyword} must have two arguments ({req.keyword} name=value)")
        key, value = re.split(r"[\t\v\f\r ]+", req.rest, maxsplit=1)
        return (ins.KeyValue(key, value, legacy=True),)
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise req.fail(f"syntax error - can't find = in {word!r}. Must be of the form: name=value")
        if not key:
            raise req.fail(f"{req.keyword} names can not be blank")
        pairs.append(ins.KeyValue(key, value))
    return tuple(pairs)


def _env(req: _Request) -> ins.Env:
    req.flags()
    return ins.Env(origin=req.origin, pairs=_pairs(req))


def _label(req: _Request) -> ins.Label:
    req.flags()
    return ins.Label(origin=req.origin, pairs=_pairs(req))


def _arg(req: _Request) -> ins.Arg:
    req.flags()
    words = parse_words(req.rest, req.escape)
    if not words:
        raise req.fail("ARG requires at least one argument")
    declarations = []
    for word in words:
        name, sep, default = word.partition("=")
        if not name:
            raise req.fail("ARG names can not be blank")
        declarations.append(ins.ArgDeclaration(name, default if sep else None))
    return ins.Arg(origin=req.origin, args=tuple(declarations))


def _expose(req: _Request) -> ins.Expose:
    req.flags()
    ports = split_whitespace(req.rest)
    if not ports:
        raise req.fail("EXPOSE requires at least one argument")
    return ins.Expose(origin=req.origin, ports=tuple(ports))


def _volume(req: _Request) -> ins.Volume:
    req.flags()
    paths, _json = req.json_or_words()
    if not paths:
        raise req.fail("VOLUME requires at least one argument")
    if any(not path.strip() for path in paths):
        raise req.fail("VOLUME specified can not be an empty string")
    return ins.Volume(origin=req.origin, paths=tuple(path.strip() for path in paths))


def _user(req: _Request) -> ins.User:
    req.flags()
    return ins.User(origin=req.origin, user=req.one_argument())


def _workdir(req: _Request) -> ins.Workdir:
    req.flags()
    return ins.Workdir(origin=req.origin, path=req.one_argument())


def _stopsignal(req: _Request) -> ins.StopSignal:
    req.flags()
    return ins.StopSignal(origin=req.origin, signal=req.one_argument())


def _maintainer(req: _Request) -> ins.Maintainer:
    req.flags()
    return ins.Maintainer(origin=req.origin, name=req.one_argument())


def _shell(req: _Request) -> ins.Shell:
    req.flags()
    command = req.command()
    if not command.args:
        raise req.fail("SHELL requires at least one argument")
    if command.is_shell:
        raise req.fail('SHELL requires the arguments to be in JSON form (SHELL ["/bin/bash", "-c"])')
    return ins.Shell(origin=req.origin, argv=command.args)


def parse_go_duration(text: str) -> int | None:
    """Go's time.ParseDuration ("1m30s", "1.5h", "300ms") in nanoseconds, None when malformed."""
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text.startswith("-") else 1
    if body == "0":
        return 0
    total = Decimal(0)
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            return None
        try:
            total += Decimal(match.group(1)) * _DURATION_UNITS_NS[match.group(2)]
        except InvalidOperation:
            return None
        pos = match.end()
    return sign * int(total) if body else None


def _interval_ns(req: _Request, flags: Flags, name: str) -> int:
    text = flags.string(name)
    if not text:
        return 0
    value = parse_go_duration(text)
    if value is None:
        raise req.fail(f"HEALTHCHECK --{name}={text!r} is not a duration (e.g. 30s, 1m30s)")
    if value != 0 and value < 10**6:
        raise req.fail(f"HEALTHCHECK --{name} cannot be less than 1ms")
    return value


def _healthcheck(req: _Request) -> ins.Healthcheck:
    if not req.rest:
        raise req.fail("HEALTHCHECK requires at least one argument")
    kind_word = re.split(r"\s", req.rest, maxsplit=1)[0]
    command_text = req.rest[len(kind_word):].lstrip()
    if kind_word.upper() == "NONE":
        if req.flag_words:
            raise req.fail("HEALTHCHECK NONE takes no options")
        if command_text:
            raise req.fail("HEALTHCHECK NONE takes no arguments")
        return ins.Healthcheck(origin=req.origin, kind=ins.HealthcheckKind.NONE)
    if kind_word.upper() != "CMD":
        raise req.fail(f"unknown type {kind_word!r} in HEALTHCHECK (try CMD)")
    flags = req.flags(_HEALTHCHECK_FLAGS)
    command = replace(req, rest=command_text).command()
    if not command.args:
        raise req.fail("missing command after HEALTHCHECK CMD")
    retries_text = flags.string("retries")
    if retries_text and not re.fullmatch(r"[+-]?[0-9]+", retries_text):
        raise req.fail(f"HEALTHCHECK --retries={retries_text!r} is not a number")
    retries = int(retries_text or 0)
    if retries < 0:
        raise req.fail(f"HEALTHCHECK --retries cannot be negative ({retries})")
    return ins.Healthcheck(origin=req.origin, kind=ins.HealthcheckKind.CMD, command=command,
                           interval_ns=_interval_ns(req, flags, "interval"),
                           timeout_ns=_interval_ns(req, flags, "timeout"),
                           start_period_ns=_interval_ns(req, flags, "start-period"),
                           start_interval_ns=_interval_ns(req, flags, "start-interval"), retries=retries)


def _onbuild(req: _Request) -> ins.Onbuild:
    if not req.rest:
        raise req.fail("ONBUILD requires at least one argument")
    req.flags()
    trigger_word = split_command(req.rest, req.escape)[0].upper()
    if trigger_word == "ONBUILD":
        raise req.fail("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger_word in ("FROM", "MAINTAINER"):
        raise req.fail(f"{trigger_word} isn't allowed as an ONBUILD trigger")
    trigger = _decode(req.rest, req.heredocs, Origin(req.origin.path, req.origin.start_line, req.origin.end_line,
                                                      req.rest), req.escape)
    expression = _ONBUILD_PREFIX.sub("", req.text, count=1)
    for heredoc in req.heredocs:
        expression += "\n" + heredoc.content + heredoc.name
    return ins.Onbuild(origin=req.origin, trigger=trigger, expression=expression)


def _sources(req: _Request) -> tuple[tuple[str, ...], tuple[ins.InlineFile, ...], str]:
    args, json_form = req.json_or_words()
    if len(args) < 2:
        raise req.fail(f"{req.keyword} requires at least two arguments (sources and a destination)")
    dest = args[-1]
    if not json_form and parse_heredoc_word(dest, path=req.origin.path, line=req.origin.start_line):
        raise req.fail(f"{req.keyword} cannot accept a heredoc as a destination")
    bodies = {heredoc.name: heredoc for heredoc in req.heredocs}
    paths: list[str] = []
    inline: list[ins.InlineFile] = []
    for source in args[:-1]:
        heredoc = None if json_form else parse_heredoc_word(source, path=req.origin.path, line=req.origin.start_line)
        if heredoc is None:
            paths.append(source)
            continue
        body = bodies.get(heredoc.name, heredoc)
        inline.append(ins.InlineFile(heredoc.name, body.body, heredoc.expand))
    return tuple(paths), tuple(inline), dest


def _copy(req: _Request) -> ins.Copy:
    flags = req.flags(_COPY_FLAGS)
    sources, inline, dest = _sources(req)
    source_stage = flags.string("from")
    try:
        uses_variables = expand_word(source_stage, {}, escape=req.escape) != source_stage
    except ExpansionError:
        uses_variables = True
    if uses_variables:
        raise req.fail("COPY --from does not take variables; declare a stage (FROM ${VAR} AS name) and copy "
                       "from it instead")
    return ins.Copy(origin=req.origin, sources=sources, dest=dest, inline=inline, from_=source_stage,
                    chown=flags.string("chown"), chmod=flags.string("chmod"), link=flags.flag("link"),
                    parents=flags.flag("parents"), excludes=flags.repeated("exclude"))


def _add(req: _Request) -> ins.Add:
    flags = req.flags(_ADD_FLAGS)
    sources, inline, dest = _sources(req)
    return ins.Add(origin=req.origin, sources=sources, dest=dest, inline=inline, chown=flags.string("chown"),
                   chmod=flags.string("chmod"), link=flags.flag("link"), excludes=flags.repeated("exclude"),
                   checksum=flags.string("checksum"), keep_git_dir=flags.optional_flag("keep-git-dir"),
                   unpack=flags.optional_flag("unpack"))


_DECODERS: dict[str, Callable[[_Request], ins.Instruction]] = {
    "ADD": _add, "ARG": _arg, "CMD": _cmd, "COPY": _copy, "ENTRYPOINT": _entrypoint, "ENV": _env,
    "EXPOSE": _expose, "FROM": _from, "HEALTHCHECK": _healthcheck, "LABEL": _label, "MAINTAINER": _maintainer,
    "ONBUILD": _onbuild, "RUN": _run, "SHELL": _shell, "STOPSIGNAL": _stopsignal, "USER": _user,
    "VOLUME": _volume, "WORKDIR": _workdir,
}
