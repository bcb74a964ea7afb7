"""Health checks as Docker runs them (pure): the check a workload has, each probe's result, and the state
they add up to.

The rules are dockerd's (daemon/health.go): a probe exits 0 (healthy), or anything else, or runs past its
timeout (-1); failures during the start period do not count until a probe once succeeded; ``retries``
failures in a row make the workload unhealthy; the last five probes are kept, each with at most 4096
bytes of output. During the start period probes come every ``start_interval_s``, then every
``interval_s``. The test is Docker's: ["NONE"] (no check, also hiding the image's), ["CMD", argv…],
["CMD-SHELL", "command"] (run with /bin/sh -c), or a bare string (CMD-SHELL).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from isobox.errors import InvalidArgumentError

DEFAULT_INTERVAL_S = 30.0
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_START_INTERVAL_S = 5.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_BYTES = 4096
NS_PER_S = 1_000_000_000


class HealthStatus(enum.StrEnum):
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class HealthCheck:
    """What to run and how often; zero durations and retries mean "the default" (or the image's)."""

    test: tuple[str, ...] = ()  # () inherits the image's test
    interval_s: float = 0.0
    timeout_s: float = 0.0
    start_period_s: float = 0.0
    start_interval_s: float = 0.0
    retries: int = 0

    @property
    def disabled(self) -> bool:
        return bool(self.test) and self.test[0] == "NONE"

    def argv(self) -> tuple[str, ...]:
        """The probe's command line in the workload."""
        kind, rest = self.test[0], self.test[1:]
        if kind == "CMD":
            return rest
        return ("/bin/sh", "-c", " ".join(rest))

    @property
    def every_s(self) -> float:
        return self.interval_s or DEFAULT_INTERVAL_S

    @property
    def limit_s(self) -> float:
        return self.timeout_s or DEFAULT_TIMEOUT_S

    @property
    def starting_every_s(self) -> float:
        return self.start_interval_s or DEFAULT_START_INTERVAL_S

    @property
    def max_failures(self) -> int:
        return self.retries or DEFAULT_RETRIES


@dataclass(frozen=True)
class Probe:
    """One run of the check: when it ran, its exit code (-1: it timed out or could not run), its output."""

    started_at: float
    ended_at: float
    exit_code: int
    output: str


@dataclass(frozen=True)
class HealthState:
    status: HealthStatus = HealthStatus.STARTING
    failing_streak: int = 0
    log: tuple[Probe, ...] = ()


def validate_test(test: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not test:
        return test
    if test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidArgumentError(f"{what}: the test must start with NONE, CMD or CMD-SHELL, not {test[0]!r}",
                                   op="parse health check")
    if test[0] != "NONE" and len(test) < 2:
        raise InvalidArgumentError(f"{what}: {test[0]} needs a command", op="parse health check")
    return test


def check(*, test: tuple[str, ...] = (), interval_s: float = 0.0, timeout_s: float = 0.0, start_period_s: float = 0.0,
          start_interval_s: float = 0.0, retries: int = 0, what: str = "health check") -> HealthCheck:
    """A HealthCheck with its values checked as dockerd checks them (no negative durations or retries, and
    durations of at least 1 ms where given)."""
    for name, value in (("interval", interval_s), ("timeout", timeout_s), ("start period", start_period_s),
                        ("start interval", start_interval_s)):
        if value < 0 or 0 < value < 0.001:
            raise InvalidArgumentError(f"{what}: {name} must be 0 or at least 1ms, not {value}s",
                                       op="parse health check")
    if retries < 0:
        raise InvalidArgumentError(f"{what}: retries may not be negative", op="parse health check")
    return HealthCheck(validate_test(test, what), interval_s, timeout_s, start_period_s, start_interval_s, retries)


def merge(asked: HealthCheck | None, image: HealthCheck | None) -> HealthCheck | None:
    """The check a workload runs: the user's, whose unset parts come from the image's (as dockerd merges
    them); None when neither has one or the user's test is NONE (--no-healthcheck)."""
    if asked is None:
        chosen = image
    elif image is None:
        chosen = asked
    else:
        chosen = HealthCheck(
            test=asked.test or image.test, interval_s=asked.interval_s or image.interval_s,
            timeout_s=asked.timeout_s or image.timeout_s, start_period_s=asked.start_period_s or image.start_period_s,
            start_interval_s=asked.start_interval_s or image.start_interval_s, retries=asked.retries or image.retries,
        )
    if chosen is None or not chosen.test or chosen.disabled:
        return None
    return chosen


def in_start_period(check_: HealthCheck, started_at: float, now: float) -> bool:
    return now - started_at < check_.start_period_s


def next_due(check_: HealthCheck, state: HealthState | None, started_at: float, now: float) -> float:
    """When the next probe is due: one interval after the last probe ended (or after the start); during
    the start period, while never healthy, the start interval instead."""
    last = state.log[-1].ended_at if state is not None and state.log else started_at
    starting = state is None or state.status is HealthStatus.STARTING
    step = check_.starting_every_s if starting and in_start_period(check_, started_at, now) else check_.every_s
    return last + step


def after_probe(check_: HealthCheck, state: HealthState | None, probe: Probe, started_at: float) -> HealthState:
    """The state after ``probe`` (dockerd's handleProbeResult)."""
    current = state or HealthState()
    log = (*current.log, probe)[-MAX_LOG_ENTRIES:]
    if probe.exit_code == 0:
        return HealthState(HealthStatus.HEALTHY, 0, log)
    counts = not (current.status is HealthStatus.STARTING and in_start_period(check_, started_at, probe.started_at))
    if not counts:
        return replace(current, log=log)
    streak = current.failing_streak + 1
    status = HealthStatus.UNHEALTHY if streak >= check_.max_failures else current.status
    return HealthState(status, streak, log)


def truncate_output(data: bytes) -> str:
    return data[:MAX_OUTPUT_BYTES].decode("utf-8", "replace")


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, what: str = "duration") -> float:
    """A Go duration as the docker CLI takes it ("30s", "1m30s", "500ms", "0") → seconds."""
    value = text.strip()
    if value in ("0", ""):
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        position = match.end()
    if position != len(value) or position == 0:
        raise InvalidArgumentError(f"invalid {what} {text!r}: use a duration such as 30s, 1m30s or 500ms",
                                   op="parse health check")
    return total


def from_docker(document: Mapping[str, Any] | None, what: str) -> HealthCheck | None:
    """Docker's Healthcheck object (an image config's, or a create request's Config.Healthcheck), durations
    in nanoseconds; None when absent or empty."""
    if not document:
        return None
    raw_test = document.get("Test") or []
    if isinstance(raw_test, str):
        raw_test = ["CMD-SHELL", raw_test]
    if not isinstance(raw_test, list) or not all(isinstance(word, str) for word in raw_test):
        raise InvalidArgumentError(f"{what}.Test must be an array of strings", op="parse health check")

    def seconds(key: str) -> float:
        value = document.get(key) or 0
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgumentError(f"{what}.{key} must be a number of nanoseconds", op="parse health check")
        return float(value) / NS_PER_S

    retries = document.get("Retries") or 0
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise InvalidArgumentError(f"{what}.Retries must be an integer", op="parse health check")
    return check(test=tuple(raw_test), interval_s=seconds("Interval"), timeout_s=seconds("Timeout"),
                 start_period_s=seconds("StartPeriod"), start_interval_s=seconds("StartInterval"), retries=retries,
                 what=what)


def to_docker(check_: HealthCheck) -> dict[str, Any]:
    """Docker's Healthcheck object (durations in nanoseconds; zeros are omitted, as Docker shows them)."""
    document: dict[str, Any] = {"Test": list(check_.test)}
    for key, value in (("Interval", check_.interval_s), ("Timeout", check_.timeout_s),
                       ("StartPeriod", check_.start_period_s), ("StartInterval", check_.start_interval_s)):
        if value:
            document[key] = round(value * NS_PER_S)
    if check_.retries:
        document["Retries"] = check_.retries
    return document
