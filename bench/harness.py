"""Side-by-side benchmark harness: interleaved runs, robust statistics, ratios against a baseline.

A benchmark compares isobox with its peers (podman, docker, runc, QEMU ...) on the same machine in
the same run, so that the numbers in a result are comparable with each other even when the machine
is noisy. Three choices serve that:

- **Interleaving.** Each round runs every case once (A B C, A B C, ...), so slow drifts of the machine
  (thermal throttling, page cache, a background job) hit all cases alike instead of whichever case
  happened to run during the drift. Optionally each round's order is shuffled (``seed``).
- **Warm-up rounds** are run and discarded: the first run of a tool pays for cold caches.
- **Medians and percentiles**, not means: one slow outlier (a page-cache miss, a GC) moves the mean
  but not the median. The ratio of a case to the baseline is the ratio of their medians.

``run_cases`` measures wall time; ``summarize`` turns any samples (e.g. memory from ``rss_kb``) into
the same result, table and JSON. Results go to ``bench/results/<name>.json`` and ``<name>.md``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"

Action = Sequence[str] | Callable[[], None]


class Skipped(Exception):
    """A benchmark (or one case) cannot run on this machine; ``bench.run`` reports it, not a failure."""


class BenchError(Exception):
    """A measured command failed: its numbers would be meaningless."""


@dataclass(frozen=True)
class Case:
    """One contestant: a command line (run with subprocess, output discarded) or a Python callable.

    ``setup``/``teardown`` run before/after *each* measured run and are not timed (e.g. remove the
    container the previous run left, drop an image from the cache). ``requires`` lists executables
    the case needs; by default the command's ``argv[0]``. A case whose tool is missing is skipped.
    """

    name: str
    argv: Action
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None
    requires: tuple[str, ...] | None = None
    env: Mapping[str, str] | None = None
    timeout_s: float | None = 600.0

    def __post_init__(self) -> None:
        # A string is a Sequence[str] too; "docker run x" would be run as the program "d".
        if isinstance(self.argv, str):
            raise TypeError(f"case {self.name!r}: argv must be a list of arguments, not a string")
        if not callable(self.argv) and not self.argv:
            raise ValueError(f"case {self.name!r}: argv is empty")

    def required_tools(self) -> tuple[str, ...]:
        if self.requires is not None:
            return self.requires
        if callable(self.argv):
            return ()
        return (self.argv[0],)

    def missing_tool(self) -> str | None:
        """The first required executable that is not installed, or None."""
        for tool in self.required_tools():
            if shutil.which(tool) is None:
                return tool
        return None


@dataclass(frozen=True)
class Stats:
    """Summary of one case's samples, in the result's unit."""

    name: str
    n: int
    median: float
    mean: float
    stdev: float
    min: float
    max: float
    p10: float
    p90: float
    ratio: float | None  # median / baseline median; None for a zero baseline
    samples: tuple[float, ...]


@dataclass(frozen=True)
class Result:
    name: str
    unit: str
    baseline: str
    runs: int
    warmup: int
    cases: tuple[Stats, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # case name -> reason
    host: dict[str, str] = field(default_factory=dict)
    order: tuple[tuple[str, ...], ...] = ()  # the order of each measured round, for the record

    def case(self, name: str) -> Stats:
        for stats in self.cases:
            if stats.name == name:
                return stats
        raise KeyError(name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def to_markdown(self) -> str:
        return markdown_table(self)


def require(*tools: str) -> None:
    """Raise Skipped("<tool> not installed") for the first tool missing from PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise Skipped(f"{tool} not installed")


# -- statistics --------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def describe(name: str, samples: Sequence[float], baseline_median: float | None) -> Stats:
    if not samples:
        raise ValueError(f"case {name!r} has no samples")
    median = statistics.median(samples)
    ratio = None if not baseline_median else median / baseline_median
    return Stats(
        name=name,
        n=len(samples),
        median=median,
        mean=statistics.fmean(samples),
        stdev=statistics.stdev(samples) if len(samples) > 1 else 0.0,
        min=min(samples),
        max=max(samples),
        p10=percentile(samples, 10),
        p90=percentile(samples, 90),
        ratio=ratio,
        samples=tuple(samples),
    )


def summarize(
    name: str,
    samples: Mapping[str, Sequence[float]],
    *,
    baseline: str,
    unit: str,
    warmup: int = 0,
    skipped: Mapping[str, str] | None = None,
    order: Sequence[Sequence[str]] = (),
) -> Result:
    """Turn raw samples per case (in ``unit``) into a Result with ratios against ``baseline``."""
    if baseline not in samples:
        raise ValueError(f"baseline {baseline!r} is not one of the cases: {', '.join(samples)}")
    base = statistics.median(samples[baseline])
    return Result(
        name=name,
        unit=unit,
        baseline=baseline,
        runs=max((len(s) for s in samples.values()), default=0),
        warmup=warmup,
        cases=tuple(describe(case, values, base) for case, values in samples.items()),
        skipped=dict(skipped or {}),
        host=host_facts(),
        order=tuple(tuple(r) for r in order),
    )


def host_facts() -> dict[str, str]:
    """What a reader needs to judge the numbers: machine, kernel, CPUs, Python, time."""
    return {
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpus": str(os.cpu_count() or 0),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# -- running ------------------------------------------------------------------------------------------


def _run_once(case: Case) -> None:
    if callable(case.argv):
        case.argv()
        return
    env = None if case.env is None else {**os.environ, **case.env}
    try:
        done = subprocess.run(
            list(case.argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            timeout=case.timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"case {case.name!r} timed out after {case.timeout_s}s: {exc.cmd}") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-2000:]
        raise BenchError(f"case {case.name!r} exited with {done.returncode}: {' '.join(case.argv)}\n{tail}")


def measure(case: Case, clock: Callable[[], int] = time.perf_counter_ns) -> int:
    """Run ``case`` once (setup and teardown untimed) and return its wall time in nanoseconds."""
    if case.setup is not None:
        case.setup()
    try:
        start = clock()
        _run_once(case)
        return clock() - start
    finally:
        if case.teardown is not None:
            case.teardown()


def schedule(names: Sequence[str], rounds: int, seed: int | None = None) -> list[list[str]]:
    """The order of each round: every case once per round; shuffled per round when ``seed`` is set."""
    rng = random.Random(seed) if seed is not None else None
    plan = []
    for _ in range(rounds):
        order = list(names)
        if rng is not None:
            rng.shuffle(order)
        plan.append(order)
    return plan


def run_cases(
    name: str,
    cases: Sequence[Case],
    runs: int = 10,
    warmup: int = 2,
    *,
    baseline: str,
    seed: int | None = None,
    results_dir: Path | None = RESULTS_DIR,
    echo: bool = True,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Result:
    """Measure wall time of ``cases``, interleaved, and write and print the result.

    ``runs`` measured rounds follow ``warmup`` discarded rounds; each round runs every case once.
    Times are reported in milliseconds. Cases whose tool is missing are skipped and listed; if the
    baseline itself is missing, the whole benchmark raises Skipped. ``results_dir=None`` writes
    nothing (tests); ``echo`` prints the Markdown table.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs} warmup={warmup}")
    by_name = {case.name: case for case in cases}
    if len(by_name) != len(cases):
        raise ValueError("case names must be unique")
    if baseline not in by_name:
        raise ValueError(f"baseline {baseline!r} is not one of the cases: {', '.join(by_name)}")
    skipped = {}
    for case in cases:
        tool = case.missing_tool()
        if tool is not None:
            skipped[case.name] = f"{tool} not installed"
    if baseline in skipped:
        raise Skipped(skipped[baseline])
    active = [case.name for case in cases if case.name not in skipped]

    for order in schedule(active, warmup, seed):
        for case_name in order:
            measure(by_name[case_name], clock)
    samples: dict[str, list[float]] = {case_name: [] for case_name in active}
    rounds = schedule(active, runs, None if seed is None else seed + 1)
    for order in rounds:
        for case_name in order:
            samples[case_name].append(measure(by_name[case_name], clock) / 1e6)

    result = summarize(name, samples, baseline=baseline, unit="ms", warmup=warmup, skipped=skipped, order=rounds)
    report(result, results_dir=results_dir, echo=echo)
    return result


# -- output -------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def markdown_table(result: Result) -> str:
    """A Markdown table: one row per case, ratio column against the baseline."""
    unit = result.unit
    lines = [
        f"### {result.name}",
        "",
        f"{result.runs} runs after {result.warmup} warm-up, interleaved; "
        f"ratio = median / median of `{result.baseline}` (lower is faster/smaller).",
        "",
        f"| case | median ({unit}) | p10 | p90 | min | max | stdev | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result.cases:
        ratio = "n/a" if s.ratio is None else f"{s.ratio:.2f}x"
        mark = " (baseline)" if s.name == result.baseline else ""
        lines.append(
            f"| {s.name}{mark} | {_fmt(s.median)} | {_fmt(s.p10)} | {_fmt(s.p90)} | {_fmt(s.min)} "
            f"| {_fmt(s.max)} | {_fmt(s.stdev)} | {ratio} |"
        )
    for case_name, reason in result.skipped.items():
        lines.append(f"| {case_name} | skipped: {reason} | | | | | | |")
    if result.host:
        h = {key: result.host.get(key, "?") for key in ("machine", "kernel", "cpus", "python", "date")}
        lines += [
            "",
            f"Host: {h['machine']}, kernel {h['kernel']}, {h['cpus']} CPUs, Python {h['python']}, {h['date']}.",
        ]
    return "\n".join(lines) + "\n"


def write_result(result: Result, results_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` under ``results_dir``; return both paths."""
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / f"{result.name}.json"
    md_path = results_dir / f"{result.name}.md"
    for path, text in ((json_path, result.to_json()), (md_path, result.to_markdown())):
        # Write then rename: an interrupted run leaves the previous result, never a truncated one.
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return json_path, md_path


def report(result: Result, *, results_dir: Path | None = RESULTS_DIR, echo: bool = True) -> None:
    """Write the result files (unless ``results_dir`` is None) and print the table (if ``echo``)."""
    if results_dir is not None:
        write_result(result, results_dir)
    if echo:
        print(result.to_markdown(), flush=True)


# -- memory -------------------------------------------------------------------------------------------


def _children_map(proc: Path) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process exited while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses; cut at the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 2:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(pids: Iterable[int], proc: Path = Path("/proc")) -> set[int]:
    """``pids`` and all their descendants that are alive now (from the ppid field of /proc/*/stat)."""
    children = _children_map(proc)
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, ()))
    return {pid for pid in seen if (proc / str(pid)).exists()}


def _field_kb(path: Path, key: str) -> int:
    try:
        text = path.read_text()
    except OSError:  # exited, or a kernel thread without an mm
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_kb(pids: Iterable[int], *, tree: bool = True, metric: str = "pss", proc: Path = Path("/proc")) -> int:
    """Summed memory in kB of ``pids`` (and their descendants if ``tree``).

    ``metric="pss"`` (default) sums Pss from /proc/PID/smaps_rollup (Linux 4.14+): shared pages are
    divided among the processes sharing them, so the sum is what the group really costs. ``"rss"``
    sums VmRSS from /proc/PID/status, which counts shared pages (libc, a QEMU binary) once per
    process and so overstates groups of processes (proc(5)).
    """
    if metric not in ("pss", "rss"):
        raise ValueError(f"metric must be 'pss' or 'rss', got {metric!r}")
    members = process_tree(pids, proc) if tree else set(pids)
    if metric == "pss":
        return sum(_field_kb(proc / str(pid) / "smaps_rollup", "Pss") for pid in members)
    return sum(_field_kb(proc / str(pid) / "status", "VmRSS") for pid in members)
