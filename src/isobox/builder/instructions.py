"""The Dockerfile instructions as frozen values (the Dockerfile reference, one class per instruction).

Every instruction keeps its ``origin`` (file, lines, text as one logical line). Values are as
written: quotes, escapes and ``$VARIABLES`` are still in them. The steps of a BuildPlan carry the
same classes with variables expanded where Docker expands them (see ``substitute``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from isobox.builder.lexer import Heredoc
from isobox.builder.mounts import NetworkMode, RunMount, SecurityMode
from isobox.builder.source import Origin

__all__ = [  # Heredoc, RunMount, NetworkMode and SecurityMode are re-exported: instruction fields use them
    "Add", "Arg", "ArgDeclaration", "Cmd", "CommandForm", "CommandLine", "Copy", "Entrypoint", "Env", "Expose",
    "From", "Healthcheck", "HealthcheckKind", "Heredoc", "InlineFile", "Instruction", "KeyValue", "Label",
    "Maintainer", "NetworkMode", "Onbuild", "Run", "RunMount", "SecurityMode", "Shell", "StopSignal", "User",
    "Volume", "Workdir",
]


class CommandForm(enum.StrEnum):
    SHELL = "shell"  # run through the stage's SHELL (default /bin/sh -c)
    EXEC = "exec"  # a JSON array, run as it is


@dataclass(frozen=True)
class CommandLine:
    """RUN, CMD, ENTRYPOINT and HEALTHCHECK CMD: exec form argv, or the shell form's one command text."""

    form: CommandForm
    args: tuple[str, ...]  # shell form: (command,) or () when nothing was given

    @property
    def is_shell(self) -> bool:
        return self.form == CommandForm.SHELL


@dataclass(frozen=True, kw_only=True)
class Instruction:
    keyword: ClassVar[str] = ""
    origin: Origin


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    keyword: ClassVar[str] = "FROM"
    image: str  # an image reference, "scratch", or the name of an earlier stage
    name: str = ""  # the AS name, lower case ("" when the stage has none)
    platform: str = ""  # --platform as written


@dataclass(frozen=True, kw_only=True)
class Run(Instruction):
    """A command run in the stage's filesystem.

    With heredocs (shell form only): when the command is one heredoc word (``RUN <<EOF``) Docker runs
    the body with the stage's shell, or as a script of its own when it starts with ``#!``; otherwise
    the bodies follow the command line as shell heredocs (command, then each body and its delimiter).
    """

    keyword: ClassVar[str] = "RUN"
    command: CommandLine
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[RunMount, ...] = ()
    network: NetworkMode = NetworkMode.DEFAULT
    security: SecurityMode = SecurityMode.SANDBOX


@dataclass(frozen=True, kw_only=True)
class Cmd(Instruction):
    keyword: ClassVar[str] = "CMD"
    command: CommandLine


@dataclass(frozen=True, kw_only=True)
class Entrypoint(Instruction):
    keyword: ClassVar[str] = "ENTRYPOINT"
    command: CommandLine


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    legacy: bool = False  # written as "ENV key value" (one pair, the value is the rest of the line)


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    keyword: ClassVar[str] = "ENV"
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True)
class ArgDeclaration:
    name: str
    default: str | None = None  # None: declared without a default


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    keyword: ClassVar[str] = "ARG"
    args: tuple[ArgDeclaration, ...]


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    keyword: ClassVar[str] = "USER"
    user: str


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    path: str


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    keyword: ClassVar[str] = "SHELL"
    argv: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


class HealthcheckKind(enum.StrEnum):
    NONE = "NONE"  # disable a check inherited from the base image
    CMD = "CMD"


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """Durations in nanoseconds as the image config stores them; 0 = Docker's default."""

    keyword: ClassVar[str] = "HEALTHCHECK"
    kind: HealthcheckKind
    command: CommandLine | None = None
    interval_ns: int = 0
    timeout_ns: int = 0
    start_period_ns: int = 0
    start_interval_ns: int = 0
    retries: int = 0

    @property
    def test(self) -> tuple[str, ...]:
        """The image config's Healthcheck.Test: ["NONE"], ["CMD", argv…] or ["CMD-SHELL", command]."""
        if self.command is None:
            return ("NONE",)
        return ("CMD-SHELL" if self.command.is_shell else "CMD", *self.command.args)


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    """A trigger stored in the image; it runs when a later build uses the image as its base."""

    keyword: ClassVar[str] = "ONBUILD"
    trigger: Instruction
    expression: str  # what the image config's OnBuild list holds (heredoc bodies appended)


@dataclass(frozen=True)
class InlineFile:
    """A heredoc given to COPY/ADD as a source file named after its delimiter."""

    name: str
    content: str  # leading tabs already stripped for <<-
    expand: bool = True


@dataclass(frozen=True, kw_only=True)
class Copy(Instruction):
    keyword: ClassVar[str] = "COPY"
    sources: tuple[str, ...]
    dest: str
    inline: tuple[InlineFile, ...] = ()
    from_: str = ""  # --from: a stage name, a stage index or an image ("" = the build context)
    chown: str = ""
    chmod: str = ""
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Add(Instruction):
    keyword: ClassVar[str] = "ADD"
    sources: tuple[str, ...]
    dest: str
    inline: tuple[InlineFile, ...] = ()
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: tuple[str, ...] = ()
    checksum: str = ""
    keep_git_dir: bool | None = None  # None: not given
    unpack: bool | None = None  # None: Docker's default (local archives unpacked, URLs not)


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    """Deprecated (use LABEL maintainer=…) but still accepted."""

    keyword: ClassVar[str] = "MAINTAINER"
    name: str
