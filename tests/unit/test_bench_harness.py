"""The benchmark harness: statistics, interleaving, skipping, output files, memory sums (no real tools)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

# `python -m pytest` from the repo root puts bench/ on sys.path; plain `pytest` does not.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import run as bench_run  # noqa: E402
from bench.harness import (  # noqa: E402
    BenchError,
    Case,
    Skipped,
    describe,
    markdown_table,
    measure,
    percentile,
    process_tree,
    require,
    rss_kb,
    run_cases,
    schedule,
    summarize,
    write_result,
)

MS = 1_000_000  # ns


class FakeClock:
    """A clock that only moves when a fake case 'works'; the log records what ran, in order."""

    def __init__(self) -> None:
        self.now = 0
        self.log: list[str] = []

    def __call__(self) -> int:
        return self.now

    def work(self, label: str, ns: int) -> Callable[[], None]:
        def step() -> None:
            self.log.append(label)
            self.now += ns

        return step

    def case(self, name: str, durations_ms: list[float], *, with_hooks: bool = False) -> Case:
        """A case whose n-th run takes durations_ms[n % len] (setup/teardown cost 1 s, untimed)."""
        count = [0]

        def run() -> None:
            self.log.append(name)
            self.now += int(durations_ms[count[0] % len(durations_ms)] * MS)
            count[0] += 1

        if not with_hooks:
            return Case(name, run)
        return Case(name, run, setup=self.work(f"{name}.setup", 1000 * MS),
                    teardown=self.work(f"{name}.teardown", 1000 * MS))  # fmt: skip


# -- statistics --------------------------------------------------------------------------------------


def test_percentile_linear_interpolation() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 10) == pytest.approx(1.3)
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile([7.0], 90) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_describe() -> None:
    stats = describe("x", [10.0, 12.0, 11.0, 100.0, 9.0], baseline_median=5.5)
    assert stats.n == 5
    assert stats.median == 11.0  # the outlier does not move it
    assert stats.mean == pytest.approx(28.4)
    assert stats.min == 9.0 and stats.max == 100.0
    assert stats.stdev == pytest.approx(40.04, abs=0.01)  # sqrt(6413.2 / 4)
    assert stats.ratio == pytest.approx(2.0)
    assert describe("one", [3.0], 3.0).stdev == 0.0
    assert describe("zero-base", [3.0], 0.0).ratio is None


def test_summarize_ratios_against_baseline() -> None:
    result = summarize("s", {"isobox": [10.0, 10.0, 12.0], "podman": [20.0, 22.0, 18.0]},
                       baseline="isobox", unit="kB")  # fmt: skip
    assert result.case("isobox").ratio == pytest.approx(1.0)
    assert result.case("podman").ratio == pytest.approx(2.0)
    assert result.unit == "kB" and result.runs == 3
    with pytest.raises(ValueError, match="baseline"):
        summarize("s", {"a": [1.0]}, baseline="b", unit="ms")


# -- interleaving and timing -------------------------------------------------------------------------


def test_schedule_fixed_and_shuffled() -> None:
    assert schedule(["a", "b"], 3) == [["a", "b"]] * 3
    shuffled = schedule(["a", "b", "c"], 20, seed=7)
    assert all(sorted(r) == ["a", "b", "c"] for r in shuffled)
    assert len({tuple(r) for r in shuffled}) > 1
    assert shuffled == schedule(["a", "b", "c"], 20, seed=7)


def test_cases_are_interleaved_after_warmup(tmp_path: Path) -> None:
    clock = FakeClock()
    cases = [clock.case("A", [10]), clock.case("B", [20])]
    result = run_cases("t", cases, runs=3, warmup=2, baseline="A", results_dir=None, echo=False, clock=clock)
    assert clock.log == ["A", "B"] * 5
    assert result.case("A").samples == (10.0, 10.0, 10.0)
    assert result.case("B").n == 3
    assert result.warmup == 2 and result.runs == 3
    assert result.order == (("A", "B"),) * 3


def test_warmup_samples_are_discarded() -> None:
    clock = FakeClock()
    # The first (warm-up) run of A is slow; only the measured ones count.
    cases = [clock.case("A", [500, 10, 10, 10]), clock.case("B", [30])]
    result = run_cases("t", cases, runs=3, warmup=1, baseline="A", results_dir=None, echo=False, clock=clock)
    assert result.case("A").samples == (10.0, 10.0, 10.0)
    assert result.case("B").ratio == pytest.approx(3.0)


def test_setup_and_teardown_wrap_each_run_untimed() -> None:
    clock = FakeClock()
    cases = [clock.case("A", [5], with_hooks=True), clock.case("B", [7])]
    result = run_cases("t", cases, runs=2, warmup=0, baseline="B", results_dir=None, echo=False, clock=clock)
    assert clock.log == ["A.setup", "A", "A.teardown", "B"] * 2
    assert result.case("A").median == 5.0  # the 1 s setup/teardown is not in the sample


def test_teardown_runs_when_case_fails() -> None:
    clock = FakeClock()

    def boom() -> None:
        raise RuntimeError("boom")

    case = Case("bad", boom, teardown=clock.work("cleanup", 0))
    with pytest.raises(RuntimeError):
        measure(case, clock)
    assert clock.log == ["cleanup"]


def test_seeded_rounds_record_their_order() -> None:
    clock = FakeClock()
    cases = [clock.case(name, [1]) for name in "ABC"]
    result = run_cases("t", cases, runs=6, warmup=1, baseline="A", seed=3, results_dir=None, echo=False,
                       clock=clock)  # fmt: skip
    measured = clock.log[3:]
    assert [list(r) for r in result.order] == [measured[i : i + 3] for i in range(0, 18, 3)]


def test_real_clock_and_subprocess_case() -> None:
    ok = Case("py-ok", [sys.executable, "-c", "pass"])
    assert measure(ok) > 0
    failing = Case("py-fail", [sys.executable, "-c", "import sys; sys.stderr.write('nope'); sys.exit(3)"])
    with pytest.raises(BenchError, match=r"exited with 3(.|\n)*nope"):
        measure(failing)
    check_env = "import os, sys; sys.exit(os.environ['BENCH_X'] != '1')"
    env_case = Case("py-env", [sys.executable, "-c", check_env], env={"BENCH_X": "1"})
    measure(env_case)


# -- validation and skipping -------------------------------------------------------------------------


def test_case_validation() -> None:
    with pytest.raises(TypeError):
        Case("s", "docker run alpine")  # a str is a Sequence[str]: only a runtime check catches it
    with pytest.raises(ValueError):
        Case("e", [])
    clock = FakeClock()
    with pytest.raises(ValueError, match="baseline"):
        run_cases("t", [clock.case("A", [1])], baseline="Z", results_dir=None, echo=False, clock=clock)
    with pytest.raises(ValueError, match="unique"):
        run_cases("t", [clock.case("A", [1]), clock.case("A", [1])], baseline="A", results_dir=None,
                  echo=False, clock=clock)  # fmt: skip
    with pytest.raises(ValueError):
        run_cases("t", [clock.case("A", [1])], runs=0, baseline="A", results_dir=None, echo=False, clock=clock)


def test_missing_peer_is_skipped_not_failed() -> None:
    clock = FakeClock()
    peer = Case("docker", ["isobox-test-no-such-tool", "run", "x"])
    result = run_cases("t", [clock.case("isobox", [1]), peer], runs=2, warmup=1, baseline="isobox",
                       results_dir=None, echo=False, clock=clock)  # fmt: skip
    assert result.skipped == {"docker": "isobox-test-no-such-tool not installed"}
    assert [s.name for s in result.cases] == ["isobox"]
    assert "| docker | skipped: isobox-test-no-such-tool not installed |" in markdown_table(result)


def test_requires_applies_to_callable_cases() -> None:
    clock = FakeClock()
    peer = Case("podman", clock.work("podman", 1), requires=("isobox-test-no-such-tool",))
    result = run_cases("t", [clock.case("isobox", [1]), peer], runs=1, warmup=0, baseline="isobox",
                       results_dir=None, echo=False, clock=clock)  # fmt: skip
    assert "podman" in result.skipped
    assert "podman" not in clock.log


def test_missing_baseline_skips_the_benchmark() -> None:
    clock = FakeClock()
    base = Case("qemu", ["isobox-test-no-such-qemu"])
    with pytest.raises(Skipped, match="isobox-test-no-such-qemu not installed"):
        run_cases("t", [base, clock.case("isobox", [1])], baseline="qemu", results_dir=None, echo=False)
    assert clock.log == []


def test_require() -> None:
    require(sys.executable)
    with pytest.raises(Skipped, match=r"^isobox-test-no-such-tool not installed$"):
        require("isobox-test-no-such-tool")


# -- output ------------------------------------------------------------------------------------------


def test_results_are_written_and_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    cases = [clock.case("isobox", [10, 12]), clock.case("podman", [30, 26]),
             Case("docker", ["isobox-test-no-such-docker"])]  # fmt: skip
    run_cases("startup", cases, runs=4, warmup=1, baseline="isobox", results_dir=tmp_path, clock=clock)
    data = json.loads((tmp_path / "startup.json").read_text())
    assert data["name"] == "startup" and data["unit"] == "ms" and data["baseline"] == "isobox"
    by_name = {c["name"]: c for c in data["cases"]}
    assert by_name["podman"]["ratio"] == pytest.approx(28 / 11)
    assert len(by_name["isobox"]["samples"]) == 4
    assert data["skipped"] == {"docker": "isobox-test-no-such-docker not installed"}
    assert set(data["host"]) >= {"kernel", "cpus", "date"}
    markdown = (tmp_path / "startup.md").read_text()
    assert "| case | median (ms) | p10 | p90 | min | max | stdev | ratio |" in markdown
    assert "| isobox (baseline) | 11.0 |" in markdown
    assert "| podman | 28.0 |" in markdown and "2.55x" in markdown
    assert markdown in capsys.readouterr().out


def test_write_result_creates_directory(tmp_path: Path) -> None:
    result = summarize("mem", {"a": [1024.0]}, baseline="a", unit="kB")
    json_path, md_path = write_result(result, tmp_path / "new" / "dir")
    assert json_path.name == "mem.json" and md_path.name == "mem.md"
    assert "median (kB)" in md_path.read_text()


# -- memory ------------------------------------------------------------------------------------------


def fake_proc(root: Path, pid: int, ppid: int, comm: str, rss: int | None, pss: int | None) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560\n")
    status = f"Name:\t{comm}\nPid:\t{pid}\nPPid:\t{ppid}\n"
    if rss is not None:
        status += f"VmRSS:\t{rss} kB\n"
    (d / "status").write_text(status)
    if pss is not None:
        (d / "smaps_rollup").write_text(f"00400000-7ffd [rollup]\nRss:\t{rss} kB\nPss:\t{pss} kB\n")


def test_rss_of_a_fake_process_tree(tmp_path: Path) -> None:
    fake_proc(tmp_path, 1, 0, "init", 100, 90)
    fake_proc(tmp_path, 10, 1, "conmon", 1000, 400)
    fake_proc(tmp_path, 11, 10, "my) (odd comm", 2000, 1500)  # parentheses and spaces in comm
    fake_proc(tmp_path, 12, 11, "kworker", None, None)  # no mm
    fake_proc(tmp_path, 20, 1, "unrelated", 5000, 5000)
    (tmp_path / "self").mkdir()  # non-numeric entries are ignored
    assert process_tree([10], proc=tmp_path) == {10, 11, 12}
    assert rss_kb([10], proc=tmp_path) == 1900
    assert rss_kb([10], metric="rss", proc=tmp_path) == 3000
    assert rss_kb([10], tree=False, proc=tmp_path) == 400
    assert rss_kb([10, 20], metric="rss", proc=tmp_path) == 8000
    assert rss_kb([999], proc=tmp_path) == 0  # already gone
    with pytest.raises(ValueError):
        rss_kb([10], metric="vsz", proc=tmp_path)


def test_rss_of_real_processes() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in process_tree([os.getpid()])
        alone = rss_kb([os.getpid()], tree=False, metric="rss")
        with_child = rss_kb([os.getpid()], metric="rss")
        assert alone > 0 and with_child > alone
        assert rss_kb([os.getpid()]) > 0
    finally:
        child.kill()
        child.wait()


# -- bench.run ---------------------------------------------------------------------------------------


@pytest.fixture
def fake_benchmarks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "fakebench"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "bench_ok.py").write_text(textwrap.dedent("""
        CALLS = []
        def main(runs: int = 10) -> None:
            CALLS.append(runs)
    """))  # fmt: skip
    (package / "bench_skip.py").write_text(textwrap.dedent("""
        from bench.harness import require
        def main(runs: int = 10) -> None:
            require("isobox-test-no-such-peer")
    """))  # fmt: skip
    (package / "bench_fail.py").write_text("def main(runs: int = 10) -> None:\n    raise RuntimeError('broken')\n")
    (package / "bench_nomain.py").write_text("")
    (package / "helpers.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    return package


def test_discover_and_select(fake_benchmarks: Path) -> None:
    available = bench_run.discover(fake_benchmarks)
    assert available == ["fail", "nomain", "ok", "skip"]
    assert bench_run.select(available, []) == available
    assert bench_run.select(available, ["bench_ok", "skip.py", "ok"]) == ["ok", "skip"]
    with pytest.raises(KeyError, match="nope"):
        bench_run.select(available, ["ok", "nope"])


def test_run_one_outcomes(fake_benchmarks: Path) -> None:
    import fakebench.bench_ok  # type: ignore[import-not-found]

    assert bench_run.run_one("ok", None, package="fakebench") == "ok"
    assert bench_run.run_one("ok", 3, package="fakebench") == "ok"
    assert fakebench.bench_ok.CALLS == [10, 3]
    assert bench_run.run_one("skip", 1, package="fakebench") == "skipped: isobox-test-no-such-peer not installed"
    assert bench_run.run_one("fail", 1, package="fakebench") == "failed: RuntimeError: broken"
    assert bench_run.run_one("nomain", 1, package="fakebench") == "failed: module has no main()"


def test_main_unknown_name_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_run.main(["isobox-test-no-such-bench"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
    assert bench_run.main(["--list"]) == 0
