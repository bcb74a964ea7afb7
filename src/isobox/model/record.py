"""What isobox persists about a workload, and what a driver observes of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from isobox.model.health import HealthState
from isobox.model.plan import RunPlan
from isobox.model.spec import Kind
from isobox.model.status import Status


@dataclass(frozen=True)
class Observation:
    """What a driver sees of a workload right now."""

    status: Status
    pid: int = 0
    exit_code: int | None = None
    oom_killed: bool = False
    finished_at: float | None = None


@dataclass(frozen=True)
class WorkloadRecord:
    id: str
    name: str
    kind: Kind
    status: Status
    plan: RunPlan
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    pid: int = 0
    restart_count: int = 0
    restart_delay_s: float = 0.0  # the back-off before the last restart by policy (model.spec.next_restart_delay_s)
    stopped_by_user: bool = False
    driver_info: dict[str, str] = field(default_factory=dict)  # facts to show: accelerator and why, runtime …
    # A VM with the exec console and input port (exec -t and -i), as every image VM since they exist; its
    # memory snapshots hold that device list, so a VM (or clone) made before keeps going without them.
    exec_devices: bool = False
    health: HealthState | None = None  # while it runs with a health check: State.Health

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True)
class Stats:
    cpu_usage_ns: int = 0
    memory_bytes: int = 0
    memory_limit_bytes: int = 0
    pids: int = 0
    io_bytes: tuple[tuple[str, str, int], ...] = ()  # (major:minor, "read" | "write", bytes), where measured


@dataclass(frozen=True)
class ProcessTable:
    """`top`: the processes of a workload as rows under titles (Docker's shape: Titles, Processes)."""

    titles: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class RunResult:
    """What a run returns: the record, and in the foreground the exit code (and, where the caller asked to
    capture them, stdout and stderr)."""

    record: WorkloadRecord
    exit_code: int | None  # None when detached
    stdout: bytes = b""
    stderr: bytes = b""
