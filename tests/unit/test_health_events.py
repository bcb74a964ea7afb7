"""Health checks by dockerd's rules, and event filters by Docker's (pure model code)."""

from __future__ import annotations

from pathlib import Path

import pytest

from isobox.errors import InvalidArgumentError
from isobox.model.events import Event, EventType, check_filters, matches
from isobox.model.health import (
    HealthCheck,
    HealthState,
    HealthStatus,
    Probe,
    after_probe,
    from_docker,
    merge,
    next_due,
    parse_duration,
    to_docker,
)
from isobox.model.image_config import ImageConfig
from isobox.model.options import RunOptions, to_spec

CHECK = HealthCheck(test=("CMD", "true"), interval_s=10.0, start_period_s=30.0, start_interval_s=2.0, retries=2)


def probe(at: float, code: int) -> Probe:
    return Probe(at, at + 0.1, code, f"exit {code}")


def test_failures_in_the_start_period_do_not_count_until_once_healthy() -> None:
    state = after_probe(CHECK, HealthState(), probe(5.0, 1), started_at=0.0)
    assert (state.status, state.failing_streak) == (HealthStatus.STARTING, 0)
    state = after_probe(CHECK, state, probe(40.0, 1), started_at=0.0)  # after the start period: counts
    assert (state.status, state.failing_streak) == (HealthStatus.STARTING, 1)
    state = after_probe(CHECK, state, probe(50.0, 1), started_at=0.0)
    assert (state.status, state.failing_streak) == (HealthStatus.UNHEALTHY, 2)
    state = after_probe(CHECK, state, probe(60.0, 0), started_at=0.0)
    assert (state.status, state.failing_streak) == (HealthStatus.HEALTHY, 0)
    healthy_then_failing = after_probe(CHECK, state, probe(10.0, 1), started_at=0.0)  # in the period, but was healthy
    assert healthy_then_failing.failing_streak == 1


def test_the_log_keeps_the_last_five_probes() -> None:
    state = HealthState()
    for second in range(8):
        state = after_probe(CHECK, state, probe(100.0 + second, 0), started_at=0.0)
    assert [p.started_at for p in state.log] == [103.0, 104.0, 105.0, 106.0, 107.0]


def test_probes_come_at_the_start_interval_while_starting() -> None:
    assert next_due(CHECK, None, started_at=0.0, now=1.0) == 2.0
    starting = HealthState(log=(probe(2.0, 1),))
    assert next_due(CHECK, starting, started_at=0.0, now=3.0) == pytest.approx(4.1)
    healthy = HealthState(HealthStatus.HEALTHY, 0, (probe(2.0, 0),))
    assert next_due(CHECK, healthy, started_at=0.0, now=3.0) == pytest.approx(12.1)
    assert next_due(CHECK, starting, started_at=0.0, now=35.0) == pytest.approx(12.1)


def test_the_users_check_is_merged_with_the_images() -> None:
    image = HealthCheck(test=("CMD", "probe"), interval_s=5.0, retries=4)
    assert merge(HealthCheck(interval_s=1.0), image) == HealthCheck(("CMD", "probe"), 1.0, retries=4)
    assert merge(HealthCheck(test=("NONE",)), image) is None
    assert merge(None, None) is None
    assert merge(None, image) == image


def test_docker_documents_and_durations() -> None:
    assert parse_duration("1m30s") == 90.0 and parse_duration("500ms") == 0.5 and parse_duration("0") == 0.0
    with pytest.raises(InvalidArgumentError):
        parse_duration("ten seconds")
    document = {"Test": ["CMD-SHELL", "true"], "Interval": 3_000_000_000, "Retries": 2}
    parsed = from_docker(document, "Healthcheck")
    assert parsed is not None and to_docker(parsed) == document
    config = ImageConfig.from_oci({"config": {"Healthcheck": document}})
    assert config.health == parsed
    assert ImageConfig.from_oci({"config": {"Healthcheck": {"Test": 7}}}).health is None  # malformed: ignored


def test_run_flags_make_a_health_check() -> None:
    spec = to_spec("busybox", [], RunOptions(health_cmd="test -f /ok", health_interval="2s", health_retries=3))
    assert spec.health == HealthCheck(("CMD-SHELL", "test -f /ok"), interval_s=2.0, retries=3)
    assert to_spec("busybox", [], RunOptions(no_healthcheck=True)).health == HealthCheck(("NONE",))
    with pytest.raises(InvalidArgumentError):
        to_spec("busybox", [], RunOptions(no_healthcheck=True, health_cmd="true"))


def test_event_filters() -> None:
    event = Event(EventType.CONTAINER, "health_status: healthy", "abc123def4567890",
                  (("com.example", "x"), ("image", "busybox"), ("name", "web")))
    assert matches(event, {"type": ["container"], "event": ["health_status"], "container": ["web"]})
    assert matches(event, {"label": ["com.example=x"], "image": ["busybox"]})
    assert matches(event, {"container": ["abc123"]})
    assert not matches(event, {"type": ["network"]})
    assert not matches(event, {"label": ["com.example=y"]})
    assert not matches(event, {"container": ["other"]})
    connect = Event(EventType.NETWORK, "connect", "net1", (("container", "abc123def4567890"), ("name", "front")))
    assert matches(connect, {"container": ["abc123def4567890"], "network": ["front"]})
    with pytest.raises(InvalidArgumentError):
        check_filters({"colour": ["red"]})


def test_cgroup_io_counters_are_read_per_device(tmp_path: Path) -> None:
    from isobox.linux.cgroups import _io_v2

    stat = tmp_path / "io.stat"
    stat.write_text("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n254:1 rbytes=0 wbytes=512\n")
    assert _io_v2(stat) == (("8:0", "read", 4096), ("8:0", "write", 8192), ("254:1", "read", 0),
                            ("254:1", "write", 512))
    assert _io_v2(tmp_path / "missing") == ()
