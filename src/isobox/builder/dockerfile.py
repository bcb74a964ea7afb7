"""Parsing a Dockerfile into global ARGs and stages of typed instructions.

isobox has its own parser: the one Python parser that is kept up (dockerfile-parse) has had no release
since 2023 and knows no heredocs. This one follows the Dockerfile reference and the behaviour of
Docker's own parser (BuildKit's frontend/dockerfile), written anew for isobox.

    parse(text, path="Dockerfile") → Dockerfile(directives, global_args, stages, warnings)

A Dockerfile holds at least one stage; only ARG may come before the first FROM (those ARGs are the
global ones, usable in FROM lines). Stage names are unique, compared without case.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from isobox.builder import instructions as ins
from isobox.builder.decode import decode
from isobox.builder.lexer import Directives, ParseWarning, scan
from isobox.builder.source import DockerfileError

__all__ = ["Dockerfile", "Stage", "parse"]


@dataclass(frozen=True)
class Stage:
    """One FROM and the instructions up to the next FROM. ``index`` counts stages from 0."""

    index: int
    from_: ins.From
    instructions: tuple[ins.Instruction, ...]

    @property
    def name(self) -> str:
        return self.from_.name

    @property
    def label(self) -> str:
        """How messages name the stage: its name, or "stage N" when it has none."""
        return self.name or f"stage {self.index}"


@dataclass(frozen=True)
class Dockerfile:
    path: str
    directives: Directives
    global_args: tuple[ins.Arg, ...]
    stages: tuple[Stage, ...]
    warnings: tuple[ParseWarning, ...] = ()

    @property
    def escape(self) -> str:
        return self.directives.escape

    def instructions(self) -> Iterator[ins.Instruction]:
        """Every instruction in file order (global ARGs, then each stage's FROM and body)."""
        yield from self.global_args
        for stage in self.stages:
            yield stage.from_
            yield from stage.instructions

    def find_stage(self, name: str) -> Stage | None:
        """The stage named ``name`` (any case), or None."""
        wanted = name.lower()
        return next((stage for stage in self.stages if stage.name and stage.name == wanted), None)


def parse(text: str, *, path: str = "Dockerfile") -> Dockerfile:
    """Parses a Dockerfile's text; raises DockerfileError naming ``path`` and the line."""
    scanned = scan(text, path=path)
    if not scanned.lines:
        raise DockerfileError("the Dockerfile has no instructions" if text.strip() else "the Dockerfile is empty",
                              path=path)
    global_args: list[ins.Arg] = []
    stages: list[tuple[ins.From, list[ins.Instruction]]] = []
    warnings = list(scanned.warnings)
    for line in scanned.lines:
        instruction = decode(line, path=path, escape=scanned.directives.escape)
        if isinstance(instruction, ins.From):
            stages.append((instruction, []))
        elif stages:
            stages[-1][1].append(instruction)
        elif isinstance(instruction, ins.Arg):
            global_args.append(instruction)
        else:
            raise DockerfileError.at(instruction.origin, f"{instruction.keyword} comes before the first FROM "
                                     "(only ARG may)")
        if isinstance(instruction, ins.Maintainer):
            warnings.append(ParseWarning(line.start_line, "MAINTAINER is deprecated: use LABEL maintainer=…"))
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM instruction, so no stage to build", path=path,
                              line=scanned.lines[-1].start_line)
    _check_names([from_ for from_, _body in stages])
    return Dockerfile(
        path=path,
        directives=scanned.directives,
        global_args=tuple(global_args),
        stages=tuple(Stage(index, from_, tuple(body)) for index, (from_, body) in enumerate(stages)),
        warnings=tuple(sorted(warnings, key=lambda warning: warning.line)),
    )


def _check_names(froms: list[ins.From]) -> None:
    seen: dict[str, ins.From] = {}
    for from_ in froms:
        if not from_.name:
            continue
        earlier = seen.get(from_.name)
        if earlier is not None:
            raise DockerfileError.at(from_.origin, f"duplicate stage name {from_.name!r} (first used on line "
                                     f"{earlier.origin.start_line})")
        seen[from_.name] = from_
