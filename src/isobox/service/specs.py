"""RunOptions (the CLI's flags, the Python API's keyword arguments) → a WorkloadSpec, reading what the
options name on disk (--env-file) and in this process's environment (`-e KEY`)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from isobox.errors import InvalidArgumentError
from isobox.model.mounts import MountKind
from isobox.model.options import RunOptions, to_spec
from isobox.model.spec import WorkloadSpec, parse_env_file


def build_spec(image: str, command: list[str] | tuple[str, ...], options: RunOptions) -> WorkloadSpec:
    lines: list[str] = []
    for path in options.env_file or []:
        try:
            lines += parse_env_file(Path(path).read_text(), path)
        except OSError as exc:
            message = f"cannot read env file: {exc.strerror}"
            raise InvalidArgumentError(message, op="read --env-file", path=path) from exc
    spec = to_spec(image, command, options, env_file_lines=tuple(lines), environ=os.environ)
    return absolute_binds(spec)


def absolute_binds(spec: WorkloadSpec) -> WorkloadSpec:
    """Bind sources relative to the current directory (-v ./dir:/p) made absolute, as Docker's CLI does."""
    if not any(m.kind is MountKind.BIND and not m.source.startswith("/") for m in spec.mounts):
        return spec
    mounts = tuple(replace(m, source=os.path.abspath(m.source)) if m.kind is MountKind.BIND else m
                   for m in spec.mounts)
    return replace(spec, mounts=mounts)
