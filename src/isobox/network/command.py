"""Running the network tools (ip, nft, unshare, nsenter, dnsmasq): one place that turns failures into errors."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

from isobox.errors import HostError

log = logging.getLogger(__name__)


def run(argv: Sequence[str], *, op: str, id: str = "", input: str | None = None, check: bool = True) -> str:
    """Run a tool and return its stdout; a failure names the operation, the object and the tool's message."""
    log.debug("%s: %s", op, " ".join(argv))
    try:
        done = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as exc:
        raise HostError(f"{argv[0]} is not installed (run scripts/setup)", op=op, id=id) from exc
    except subprocess.TimeoutExpired as exc:
        raise HostError(f"{argv[0]} did not finish within 60 s", op=op, id=id) from exc
    if check and done.returncode != 0:
        message = done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}"
        raise HostError(f"{argv[0]} failed: {message}", op=op, id=id)
    return done.stdout


def write_sysctl(path: str, value: str, *, op: str, id: str = "") -> None:
    try:
        with open(path, "w") as handle:
            handle.write(value)
    except OSError as exc:
        raise HostError(f"cannot set {path}: {exc.strerror}", op=op, id=id) from exc
