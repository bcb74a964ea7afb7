"""sysctl writes of the network code (its tools run through isobox.command.run)."""

from __future__ import annotations

from isobox.errors import HostError


def write_sysctl(path: str, value: str, *, op: str, id: str = "") -> None:
    try:
        with open(path, "w") as handle:
            handle.write(value)
    except OSError as exc:
        raise HostError(f"cannot set {path}: {exc.strerror}", op=op, id=id) from exc
