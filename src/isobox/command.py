"""Running host tools (ip, nft, mkfs.ext4, e2fsck, qemu-img, nsenter …): one place that turns their
failures into errors naming the operation, the object and the tool's own message."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

from isobox.errors import HostError

log = logging.getLogger(__name__)


def run(
    argv: Sequence[str],
    *,
    op: str,
    id: str = "",
    path: str = "",
    input: str | None = None,
    check: bool = True,
    ok: tuple[int, ...] = (0,),
    timeout_s: float = 60.0,
) -> str:
    """Run a tool and return its stdout. With ``check``, an exit status outside ``ok`` is a HostError
    (e2fsck, for one, exits 1 when it repaired something)."""
    log.debug("%s: %s", op, " ".join(argv))
    try:
        done = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError as exc:
        raise HostError(f"{argv[0]} is not installed (run scripts/setup)", op=op, id=id, path=path) from exc
    except subprocess.TimeoutExpired as exc:
        raise HostError(f"{argv[0]} did not finish within {timeout_s:.0f} s", op=op, id=id, path=path) from exc
    if check and done.returncode not in ok:
        message = done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}"
        raise HostError(f"{argv[0]} failed: {message}", op=op, id=id, path=path)
    return done.stdout
