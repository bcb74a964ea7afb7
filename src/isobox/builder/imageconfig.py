"""The image configuration a stage builds up, instruction by instruction (image-spec config.md, the
``config`` object, as Docker's builders fill it), and the command lines of RUN, CMD and ENTRYPOINT.

- ENV, LABEL, EXPOSE (``80`` is ``80/tcp``; ranges are expanded), VOLUME, USER, WORKDIR (relative to
  the one before), SHELL, STOPSIGNAL, HEALTHCHECK and ONBUILD set their fields; MAINTAINER the author.
- CMD and ENTRYPOINT in shell form run through the stage's SHELL (default ``/bin/sh -c``). An ENTRYPOINT
  clears a CMD the stage inherited, but not one it set itself (the Dockerfile reference, "Understand how
  CMD and ENTRYPOINT interact").
- A new stage starts from its base's config with OnBuild emptied (triggers run once, in the build that
  uses the image) and PATH set to Docker's default when the base sets none.
"""

from __future__ import annotations

import copy
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from isobox.builder import instructions as ins
from isobox.builder.lexer import parse_heredoc_word
from isobox.builder.stages import DEFAULT_PATH
from isobox.errors import InvalidArgumentError

__all__ = ["DEFAULT_SHELL", "ConfigBuilder", "RunCommand", "run_command"]

DEFAULT_SHELL = ("/bin/sh", "-c")
HEREDOC_DIR = "/dev/pipes"  # where a "#!" heredoc script is shown to its RUN (BuildKit's place for it)
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?\Z", re.IGNORECASE)


@dataclass(frozen=True)
class RunCommand:
    """What a RUN executes: ``argv``, and a script file it needs (a ``#!`` heredoc), if any."""

    argv: tuple[str, ...]
    script_name: str = ""
    script: bytes = b""


def run_command(run: ins.Run, shell: tuple[str, ...]) -> RunCommand:
    """The argv of a RUN: exec form as written; shell form through ``shell``, heredocs as the reference
    says (one heredoc alone is the script, run by its ``#!`` interpreter or else by the shell; heredocs
    after a command line follow it, as a shell reads them)."""
    if not run.command.is_shell:
        return RunCommand(run.command.args)
    text = run.command.args[0]
    if not run.heredocs:
        return RunCommand((*shell, text))
    only = parse_heredoc_word(text.strip(), path=run.origin.path, line=run.origin.start_line)
    if only is not None and len(run.heredocs) == 1 and only.name == run.heredocs[0].name:
        body = run.heredocs[0].body
        if body.startswith("#!"):
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", only.name) or "script"
            return RunCommand((f"{HEREDOC_DIR}/{name}",), name, body.encode("utf-8", "surrogateescape"))
        return RunCommand((*shell, body))
    script = text + "\n" + "".join(heredoc.content + heredoc.name + "\n" for heredoc in run.heredocs)
    return RunCommand((*shell, script))


def _ports(ports: tuple[str, ...]) -> list[str]:
    found = []
    for port in ports:
        match = _PORT.match(port)
        if match is None:
            raise InvalidArgumentError(f"EXPOSE {port!r}: not a port (80, 80/udp, 8000-8010/tcp)", op="build")
        low, high, proto = int(match.group(1)), int(match.group(2) or match.group(1)), (match.group(3) or "tcp")
        if not 0 < low <= high <= 65535:
            raise InvalidArgumentError(f"EXPOSE {port!r}: ports are 1 to 65535", op="build")
        found += [f"{number}/{proto.lower()}" for number in range(low, high + 1)]
    return found


@dataclass
class ConfigBuilder:
    """A stage's config (the ``config`` object) and author, changed by each instruction in turn."""

    config: dict[str, Any] = field(default_factory=dict)
    author: str = ""
    cmd_set: bool = False

    @classmethod
    def from_base(cls, config: dict[str, Any] | None, author: str = "") -> ConfigBuilder:
        fresh = copy.deepcopy(config) if config else {}
        fresh.pop("OnBuild", None)
        env = list(fresh.get("Env") or [])
        if not any(item.partition("=")[0] == "PATH" for item in env):
            env.insert(0, f"PATH={DEFAULT_PATH}")
        fresh["Env"] = env
        return cls(fresh, author)

    @property
    def shell(self) -> tuple[str, ...]:
        return tuple(self.config.get("Shell") or DEFAULT_SHELL)

    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "/")

    @property
    def user(self) -> str:
        return str(self.config.get("User") or "")

    def env(self) -> list[tuple[str, str]]:
        return [(key, value) for key, _, value in (item.partition("=") for item in self.config.get("Env") or [])]

    def _command(self, command: ins.CommandLine) -> list[str]:
        return [*self.shell, *command.args] if command.is_shell and command.args else list(command.args)

    def apply(self, instruction: ins.Instruction) -> None:
        """Change the config as ``instruction`` (expanded) does; instructions that make layers only
        change it where they say so (WORKDIR)."""
        config = self.config
        if isinstance(instruction, ins.Env):
            env = dict(self.env())
            env.update((pair.key, pair.value) for pair in instruction.pairs)
            config["Env"] = [f"{key}={value}" for key, value in env.items()]
        elif isinstance(instruction, ins.Label):
            labels = dict(config.get("Labels") or {})
            labels.update((pair.key, pair.value) for pair in instruction.pairs)
            config["Labels"] = labels
        elif isinstance(instruction, ins.Expose):
            config["ExposedPorts"] = {**(config.get("ExposedPorts") or {}),
                                      **{port: {} for port in _ports(instruction.ports)}}
        elif isinstance(instruction, ins.Volume):
            config["Volumes"] = {**(config.get("Volumes") or {}), **{path: {} for path in instruction.paths}}
        elif isinstance(instruction, ins.User):
            config["User"] = instruction.user
        elif isinstance(instruction, ins.Workdir):
            config["WorkingDir"] = posixpath.normpath(posixpath.join(self.workdir, instruction.path))
        elif isinstance(instruction, ins.Shell):
            config["Shell"] = list(instruction.argv)
        elif isinstance(instruction, ins.StopSignal):
            config["StopSignal"] = instruction.signal
        elif isinstance(instruction, ins.Healthcheck):
            config["Healthcheck"] = _healthcheck(instruction)
        elif isinstance(instruction, ins.Onbuild):
            config["OnBuild"] = [*(config.get("OnBuild") or []), instruction.expression]
        elif isinstance(instruction, ins.Cmd):
            config["Cmd"] = self._command(instruction.command)
            self.cmd_set = True
        elif isinstance(instruction, ins.Entrypoint):
            config["Entrypoint"] = self._command(instruction.command)
            if not self.cmd_set:
                config["Cmd"] = None
        elif isinstance(instruction, ins.Maintainer):
            self.author = instruction.name

    def labels(self, extra: tuple[tuple[str, str], ...]) -> None:
        """``--label``s given to the build: on the final image, over the Dockerfile's own."""
        if extra:
            self.config["Labels"] = {**(self.config.get("Labels") or {}), **dict(extra)}


def _healthcheck(instruction: ins.Healthcheck) -> dict[str, Any]:
    check: dict[str, Any] = {"Test": list(instruction.test)}
    for key, value in (("Interval", instruction.interval_ns), ("Timeout", instruction.timeout_ns),
                       ("StartPeriod", instruction.start_period_ns),
                       ("StartInterval", instruction.start_interval_ns), ("Retries", instruction.retries)):
        if value:
            check[key] = value
    return check
