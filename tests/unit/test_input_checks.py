"""Input checks of run/create, pure (model/spec.py, model/options.py): limits that mean nothing or exceed the
host, log options, the reference grammar's length limit, and Docker's restart back-off."""

from __future__ import annotations

import pytest

from isobox.errors import InvalidArgumentError
from isobox.images import reference
from isobox.model.logs import LogOptions
from isobox.model.options import RunOptions, parse_log_options, to_spec
from isobox.model.spec import (
    RESTART_MAX_DELAY_S,
    Resources,
    check_resources,
    format_cpuset,
    next_restart_delay_s,
    parse_cpuset,
)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (RunOptions(cpus=float("nan")), "--cpus nan"),
        (RunOptions(cpus=float("inf")), "--cpus inf"),
        (RunOptions(cpus=-1.0), "--cpus -1.0"),
        (RunOptions(cpus=0.0), "range of CPUs is from 0.01"),
        (RunOptions(cpus=0.001), "range of CPUs"),
        (RunOptions(memory="1k"), "minimum memory limit allowed is 6MB"),
        (RunOptions(memory="5m"), "minimum memory limit"),
        (RunOptions(pids_limit=0), "--pids-limit 0"),
        (RunOptions(pids_limit=-2), "--pids-limit -2"),
        (RunOptions(cpuset_cpus="1-0"), "cpuset"),
        (RunOptions(cpuset_cpus="a"), "cpuset"),
        (RunOptions(cpuset_cpus="0,,1"), "cpuset"),
        (RunOptions(cpu_shares=-5), "--cpu-shares"),
    ],
)
def test_meaningless_limits_are_refused_with_the_flag_named(options: RunOptions, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message.replace("(", r"\(").replace(".", r"\.")):
        to_spec("busybox", [], options)


def test_sensible_limits_pass_and_minus_one_pids_is_unlimited() -> None:
    spec = to_spec("busybox", [], RunOptions(cpus=0.5, memory="6m", pids_limit=-1, cpuset_cpus="0"))
    assert spec.resources == Resources(memory_bytes=6 * 1024 * 1024, cpus=0.5, pids_limit=None, cpuset_cpus="0")
    assert to_spec("busybox", [], RunOptions(pids_limit=100)).resources.pids_limit == 100


def test_limits_beyond_the_host_use_dockers_words() -> None:
    with pytest.raises(InvalidArgumentError, match=r"range of CPUs is from 0\.01 to 2\.00, as there are only 2 CPUs"):
        check_resources(Resources(cpus=1000.0), host_cpus=2, online_cpus=frozenset({0, 1}))
    check_resources(Resources(cpus=2.0), host_cpus=2, online_cpus=frozenset({0, 1}))
    with pytest.raises(InvalidArgumentError, match="requested CPUs are not available - requested 99, available: 0-1"):
        check_resources(Resources(cpuset_cpus="99"), host_cpus=2, online_cpus=frozenset({0, 1}))
    check_resources(Resources(cpuset_cpus="0-1"), host_cpus=2, online_cpus=frozenset({0, 1}))


def test_cpuset_notation_round_trips() -> None:
    assert parse_cpuset("0-3,5, 7-8") == frozenset({0, 1, 2, 3, 5, 7, 8})
    assert format_cpuset(frozenset({0, 1, 2, 3, 5, 7, 8})) == "0-3,5,7-8"
    assert format_cpuset(frozenset({4})) == "4"


def test_log_options_follow_dockers_json_file_rules() -> None:
    assert parse_log_options([]) == LogOptions() and not LogOptions().rotates
    assert parse_log_options(["max-size=10m"]) == LogOptions(10 * 1024 * 1024, 1)
    assert parse_log_options(["max-size=1k", "max-file=3"]) == LogOptions(1024, 3)
    assert to_spec("busybox", [], RunOptions(log_opt=["max-size=2m"])).log.max_size_bytes == 2 * 1024 * 1024
    for bad, message in ((["compress=true"], "unknown log opt 'compress'"), (["max-size"], "KEY=VALUE"),
                         (["max-file=3"], "needs max-size"), (["max-size=1k", "max-file=0"], "max-file"),
                         (["max-size=0"], "positive"), (["max-size=lots"], "max-size")):
        with pytest.raises(InvalidArgumentError, match=message):
            parse_log_options(bad)


def test_repository_names_longer_than_the_grammar_allows_are_refused_before_any_registry() -> None:
    with pytest.raises(InvalidArgumentError, match="must not be more than 255 characters"):
        reference.parse("a" * 300)
    with pytest.raises(InvalidArgumentError, match="255"):
        reference.parse("registry.example:5000/" + "b" * 240 + ":tag")
    assert reference.parse("a" * 237).repository == "library/" + "a" * 237  # docker.io/library/ + 237 = 255


def test_restart_back_off_is_dockers() -> None:
    delays = [next_restart_delay_s(0.0, 0.5)]
    for _ in range(12):
        delays.append(next_restart_delay_s(delays[-1], 0.5))
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert max(delays) == RESTART_MAX_DELAY_S == delays[-1]
    assert next_restart_delay_s(RESTART_MAX_DELAY_S, 10.0) == 0.1  # a run of 10 s resets it


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (RunOptions(memory="99999999999999999999g"), "beyond any limit"),
        (RunOptions(user="99999999999999999999"), "ids go up to"),
        (RunOptions(user="0:99999999999999999999"), "ids go up to"),
        (RunOptions(hostname="h" * 65), "at most 64 characters"),
        (RunOptions(hostname="two words"), "--hostname"),
        (RunOptions(stop_timeout=float("nan")), "--stop-timeout nan"),
        (RunOptions(stop_timeout=-5), "--stop-timeout -5"),
        (RunOptions(tmpfs=["/x:size=abc"]), "invalid tmpfs option 'size=abc'"),
        (RunOptions(tmpfs=["/x:mode=999"]), "invalid tmpfs option 'mode=999'"),
    ],
)
def test_values_the_runtime_would_refuse_later_are_refused_now(options: RunOptions, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        to_spec("busybox", [], options)


def test_values_that_run_are_kept() -> None:
    spec = to_spec("busybox", [], RunOptions(hostname="my_host.local", user="1000:1000", stop_timeout=0,
                                             tmpfs=["/run:size=64m,mode=1777,uid=0"]))
    assert spec.hostname == "my_host.local" and spec.stop_timeout_s == 0
