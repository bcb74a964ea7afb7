"""How a build ends: the image it made, or the error that says which step failed and why."""

from __future__ import annotations

from dataclasses import dataclass

from isobox.builder.source import Origin
from isobox.errors import IsoboxError, WorkloadError

__all__ = ["BuildCancelledError", "BuildResult", "BuildStepError", "StepError"]


@dataclass(frozen=True)
class BuildResult:
    image_id: str  # the config digest, "sha256:…"
    tags: tuple[str, ...]  # the names it was tagged with, normalized
    steps: int
    cached_steps: int
    warnings: tuple[str, ...] = ()

    @property
    def short_id(self) -> str:
        return self.image_id.split(":", 1)[-1][:12]


class BuildStepError(WorkloadError):
    """A RUN step exited with a non-zero code: names the step (file:line and the instruction), the code and
    the last lines the step printed."""

    def __init__(self, origin: Origin, exit_code: int, last_lines: tuple[str, ...]) -> None:
        self.origin = origin
        self.exit_code = exit_code
        self.last_lines = last_lines
        tail = "".join(f"\n  {line}" for line in last_lines)
        shown = f"; its last output lines:{tail}" if last_lines else " and printed nothing"
        super().__init__(f"{origin}: {origin.text}: exited with code {exit_code}{shown}", op="build",
                         path=f"{origin}")


class StepError(IsoboxError):
    """A step could not be done for a reason outside the Dockerfile (a download, the host): names the step
    (file:line and the instruction) and keeps the cause."""

    def __init__(self, origin: Origin, cause: IsoboxError) -> None:
        self.origin = origin
        super().__init__(f"{origin}: {origin.text}: {cause.message}", op="build", path=f"{origin}")


class BuildCancelledError(IsoboxError):
    """The build was interrupted (Ctrl-C, a client that went away): nothing was tagged."""

    def __init__(self) -> None:
        super().__init__("the build was interrupted; nothing was tagged", op="build")
