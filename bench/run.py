"""Run the benchmarks: ``python -m bench.run [--runs N] [names...]`` (``make bench`` runs them all).

Discovers ``bench/bench_*.py`` modules; each exposes ``main(runs: int = ...) -> None``. A benchmark
that raises ``bench.harness.Skipped`` (a peer tool is not installed, no KVM ...) is reported as
skipped, not failed. One failing benchmark does not stop the others; the exit status is 1 if any
failed, 2 for unknown names.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench.harness import RESULTS_DIR, Skipped

BENCH_DIR = Path(__file__).resolve().parent
PREFIX = "bench_"


def discover(directory: Path = BENCH_DIR) -> list[str]:
    """Short names ("pull" for bench_pull.py) of the benchmark modules, sorted."""
    return sorted(
        info.name.removeprefix(PREFIX)
        for info in pkgutil.iter_modules([str(directory)])
        if info.name.startswith(PREFIX)
    )


def select(available: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """The benchmarks to run: all if none named; names may carry the bench_ prefix or .py suffix."""
    if not wanted:
        return list(available)
    chosen: list[str] = []
    unknown: list[str] = []
    for name in wanted:
        short = Path(name).name.removesuffix(".py").removeprefix(PREFIX)
        (chosen if short in available else unknown).append(short)
    if unknown:
        raise KeyError(", ".join(unknown))
    return list(dict.fromkeys(chosen))


def run_one(short: str, runs: int | None, package: str = "bench") -> str:
    """Import and run one benchmark; return "ok", "skipped: <reason>" or "failed: <error>"."""
    try:
        module = importlib.import_module(f"{package}.{PREFIX}{short}")
        main = getattr(module, "main", None)
        if main is None:
            return "failed: module has no main()"
        if runs is None:
            main()
        else:
            main(runs=runs)
    except Skipped as exc:
        return f"skipped: {exc}"
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        traceback.print_exc()
        return f"failed: {type(exc).__name__}: {exc}"
    return "ok"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all), e.g. pull vm")
    parser.add_argument("--runs", type=int, default=None, help="measured runs per case (default: each benchmark's own)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    available = discover()
    if args.list:
        print("\n".join(available) if available else "no benchmarks found (bench/bench_*.py)")
        return 0
    try:
        chosen = select(available, args.names)
    except KeyError as exc:
        print(f"unknown benchmark: {exc.args[0]} (available: {', '.join(available) or 'none'})", file=sys.stderr)
        return 2
    if not chosen:
        print("no benchmarks found (bench/bench_*.py)")
        return 0
    outcomes: dict[str, str] = {}
    for short in chosen:
        print(f"== {short}", flush=True)
        started = time.monotonic()
        outcomes[short] = run_one(short, args.runs)
        print(f"== {short}: {outcomes[short]} ({time.monotonic() - started:.1f}s)\n", flush=True)
    print(f"Summary (results in {RESULTS_DIR}):")
    for short, outcome in outcomes.items():
        print(f"  {short}: {outcome}")
    return 1 if any(o.startswith("failed") for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
