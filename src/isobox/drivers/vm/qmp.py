"""QMP over the VM's unix socket, through qemu.qmp's synchronous wrapper (one connection per call).

QEMU serves one QMP client at a time on a socket started with server=on (docs/system/invocation,
-qmp); isobox connects, runs one or a few commands and disconnects, so no isobox process stays
attached to a running VM. Lower-level errors (socket, protocol, QMP error replies) are translated
here, once, into WorkloadError.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from isobox.errors import WorkloadError

DEFAULT_TIMEOUT_S = 30.0


class Monitor:
    def __init__(self, client: Any, socket_path: Path, workload: str) -> None:
        self._client = client
        self._path = socket_path
        self._workload = workload

    def command(self, name: str, **arguments: object) -> Any:
        try:
            return self._client.cmd(name, **arguments)
        except (QMPError, OSError, TimeoutError, EOFError) as exc:
            raise WorkloadError(
                f"QMP {name} failed: {exc}", op=f"qmp {name}", id=self._workload, path=str(self._path)
            ) from exc

    def hmp(self, text: str) -> str:
        """A human-monitor command (savevm, loadvm, delvm and info snapshots have no QMP form in 7.2
        that works on a running VM without block jobs); a non-empty reply from these is an error."""
        reply = self.command("human-monitor-command", **{"command-line": text})
        return str(reply)


@contextmanager
def connect(socket_path: Path, workload: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[Monitor]:
    try:
        client = QEMUMonitorProtocol(str(socket_path))
        client.connect()
        client.settimeout(timeout_s)
    except (QMPError, OSError, TimeoutError, EOFError) as exc:
        raise WorkloadError(
            f"cannot connect to QEMU's monitor: {exc}", op="qmp connect", id=workload, path=str(socket_path)
        ) from exc
    try:
        yield Monitor(client, socket_path, workload)
    finally:
        try:
            client.close()
        except (QMPError, OSError, TimeoutError, EOFError):
            pass  # QEMU may have quit in answer to our last command
