"""RunOptions (the CLI's flags, the Python API's keyword arguments) → a WorkloadSpec, reading what the
options name on disk (--env-file), in this process's environment (`-e KEY`) and its current directory
(-v ./dir:/p), and checking what depends on the host (--platform); `warnings` says what the host ignores."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from isobox.errors import InvalidArgumentError
from isobox.model.mounts import MountKind
from isobox.model.options import RunOptions, to_spec
from isobox.model.spec import Kind, WorkloadSpec, parse_env_file


def build_spec(image: str, command: list[str] | tuple[str, ...], options: RunOptions) -> WorkloadSpec:
    lines: list[str] = []
    for path in options.env_file or []:
        try:
            lines += parse_env_file(Path(path).read_text(), path)
        except OSError as exc:
            message = f"cannot read env file: {exc.strerror}"
            raise InvalidArgumentError(message, op="read --env-file", path=path) from exc
    spec = to_spec(image, command, options, env_file_lines=tuple(lines), environ=os.environ)
    check_platform(spec)
    return absolute_binds(spec)


def absolute_binds(spec: WorkloadSpec) -> WorkloadSpec:
    """Bind sources relative to the current directory (-v ./dir:/p) made absolute, as Docker's CLI does."""
    if not any(m.kind is MountKind.BIND and not m.source.startswith("/") for m in spec.mounts):
        return spec
    mounts = tuple(replace(m, source=os.path.abspath(m.source)) if m.kind is MountKind.BIND else m
                   for m in spec.mounts)
    return replace(spec, mounts=mounts)


def check_platform(spec: WorkloadSpec) -> None:
    """--platform names this host's platform, or is refused: isobox runs images natively (no emulation)."""
    if not spec.platform:
        return
    from isobox.images import platform as platforms

    wanted, host = platforms.parse(spec.platform), platforms.host()
    if not wanted.matches(host):
        raise InvalidArgumentError(f"--platform {spec.platform}: this host runs {host} workloads only (isobox does "
                                   "not emulate other architectures)", op="parse --platform")


def warnings(spec: WorkloadSpec) -> list[str]:
    """Options accepted but without effect here, in words for the user (Docker warns likewise)."""
    from isobox.linux.proc import security_modules

    found: list[str] = []
    security = spec.security
    if not security.apparmor_profile and not security.selinux_label:
        return found
    modules = security_modules()
    vm = spec.kind is Kind.VM and not spec.kind_by_policy
    for option, module, given in (("apparmor", "apparmor", security.apparmor_profile),
                                  ("label", "selinux", security.selinux_label)):
        if not given:
            continue
        if vm:
            found.append(f"--security-opt {option}=… does not apply to a VM (its guest runs its own kernel); ignored")
        elif module not in modules:
            found.append(f"--security-opt {option}=… ignored: this host does not run {module}")
    return found
