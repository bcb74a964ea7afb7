"""Where an instruction came from (file, lines, text) and the error that names it."""

from __future__ import annotations

from dataclasses import dataclass

from isobox.errors import InvalidArgumentError


@dataclass(frozen=True)
class Origin:
    """An instruction's place in its Dockerfile.

    ``text`` is the instruction as one logical line: continuation lines joined, comments and blank
    continuation lines dropped, surrounding whitespace stripped; heredoc bodies are not part of it
    (they are on the instruction). History entries and cache keys are made from it.
    """

    path: str
    start_line: int
    end_line: int
    text: str

    def __str__(self) -> str:
        if self.end_line > self.start_line:
            return f"{self.path}:{self.start_line}-{self.end_line}"
        return f"{self.path}:{self.start_line}"


class DockerfileError(InvalidArgumentError):
    """A Dockerfile (or a build argument applied to it) is malformed; names the file and line.

    ``line`` is 0 when the problem has no line (an empty file, an unknown --target).
    """

    def __init__(self, reason: str, *, path: str, line: int = 0, end_line: int = 0,
                 op: str = "parse Dockerfile") -> None:
        self.reason = reason
        self.line = line
        self.end_line = max(end_line, line)
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}", op=op, path=path)

    @classmethod
    def at(cls, origin: Origin, reason: str, *, op: str = "parse Dockerfile") -> DockerfileError:
        return cls(reason, path=origin.path, line=origin.start_line, end_line=origin.end_line, op=op)
