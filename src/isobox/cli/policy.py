"""Choosing isolation: `isobox compare`, `isobox policy show|explain`, `isobox scan`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from isobox.cli import output
from isobox.cli.spec_flags import RunFlags, build_spec, with_run_flags

if TYPE_CHECKING:
    from isobox.images.scan import ScanReport
    from isobox.service.compare import Comparison, Step, Summary
    from isobox.service.context import Context
    from isobox.service.policy import Explanation

FOREGROUND = {"allow_interspersed_args": False}


def _say(text: str) -> None:
    """Print text that holds image names, paths and policy values: never read as rich markup."""
    output.out.print(text, markup=False)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    output.print_table(headers, rows)


def _ctx() -> Context:
    from isobox.service.context import open_context

    return open_context()


def register(app: typer.Typer) -> None:
    policy = typer.Typer(help="The isolation policy: which workloads run as containers, VMs, or not at all.",
                         no_args_is_help=True)
    app.add_typer(policy, name="policy")
    policy.command("show")(show)
    policy.command("explain", context_settings=FOREGROUND)(with_run_flags(explain))
    # Options may follow IMAGE (compare busybox -n 2 -- echo hi): everything after `--` is the command.
    app.command("compare")(compare)
    # For `isobox image scan`, cli/images.py can register this same function in its `image` group.
    app.command("scan")(scan)


# ---- policy -----------------------------------------------------------------------------------


def show(
    policy_file: Path | None = typer.Option(None, "--policy", help="Policy file (default: the one in force)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the policy in force, rule by rule (and check the file)."""
    from isobox.service import policy as service

    loaded = service.load_policy(policy_file)
    if json_output:
        output.print_json(loaded)
        return
    _say(f"policy: {loaded.source or 'built-in (no policy file)'}")
    rows = [
        (str(index), rule.name, rule.action.value, "; ".join(str(c) for c in rule.conditions) or "(always)")
        for index, rule in enumerate(loaded.rules, start=1)
    ]
    rows.append(("", "default", loaded.default.value, "(when no rule matches)"))
    _table(["#", "RULE", "ACTION", "CONDITIONS"], rows)


def explain(
    image: str = typer.Argument(..., help="Image to judge."),
    command: list[str] = typer.Argument(None, help="Command (does not affect the decision)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    *,
    flags: RunFlags,
) -> None:
    """Say which policy rule decides how IMAGE would run with these run flags, and why."""
    from isobox.service import policy as service

    result = service.explain(_ctx(), build_spec(image, command or [], flags))
    if json_output:
        output.print_json(result)
    else:
        _print_explanation(result)
    if result.kind is None:
        raise typer.Exit(output.EXIT_ISOBOX_ERROR)


def _print_explanation(result: Explanation) -> None:
    facts, decision = result.facts, result.decision
    _say(f"policy:   {result.policy or 'built-in (no policy file)'}")
    _say(f"image:    {facts.image}")
    for name, failing in result.not_matched:
        _say(f"  rule {name}: no match ({failing} does not hold)")
    _say(f"decision: rule {decision.rule!r} → {decision.action.value}")
    _say(f"because:  {decision.reason}")
    if result.kind is None:
        _say(f"result:   refused: {result.refusal}")
    else:
        _say(f"result:   runs as {result.kind.value}")


# ---- scan -------------------------------------------------------------------------------------


def scan(
    image: str = typer.Argument(..., help="Image to scan (from the store)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    packages: bool = typer.Option(False, "--packages", help="List every package, not only their count."),
) -> None:
    """Risk report of an image.

    Root user, setuid/setgid files, world-writable paths, secrets in files and env, packages."""
    from isobox.service import policy as service

    ctx = _ctx()
    report = service.scan_image(ctx, service.image_record(ctx, image), image)
    if json_output:
        output.print_json(report)
        return
    _print_report(report, packages)


def _print_report(report: ScanReport, list_packages: bool) -> None:
    from isobox.images.scan import Severity

    _say(f"image:    {report.image} ({report.image_id})")
    _say(f"user:     {report.user or '(none: root)'}")
    _say(f"entries:  {report.entries} files, directories and links")
    if report.counts:
        _say("findings: " + ", ".join(f"{kind} {count}" for kind, count in report.counts))
        order = list(Severity)
        rows = [(f.severity.value, f.kind.value, f.subject, f.detail)
                for f in sorted(report.findings, key=lambda f: (order.index(f.severity), f.kind.value, f.subject))]
        _table(["SEVERITY", "KIND", "SUBJECT", "DETAIL"], rows)
    else:
        _say("findings: none")
    _say("packages: " + _packages_line(report))
    if list_packages and report.packages:
        _table(["PACKAGE", "VERSION", "FROM"], [(p.name, p.version, p.source) for p in report.packages])


def _packages_line(report: ScanReport) -> str:
    """How many packages the image's package databases list, and which databases those were; when there is
    none, why (a static or distroless image may have none; an rpm database is not read)."""
    unread = f"; an {', '.join(report.unread_databases)} database is present, and isobox does not read it" \
        if report.unread_databases else ""
    if report.package_databases:
        return f"{len(report.packages)} (from {', '.join(report.package_databases)}){unread}"
    return "not counted: the image has no dpkg or apk database" + (unread or " (none of rpm either: a static or "
                                                                    "hand-built image)")


# ---- compare ----------------------------------------------------------------------------------


def compare(
    image: str = typer.Argument(..., help="Image to run both ways."),
    command: list[str] = typer.Argument(None, help="Command and arguments (default: the image's)."),
    runs: int = typer.Option(3, "-n", "--runs", min=1, help="Measured runs per kind."),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Unmeasured runs per kind first."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Also draw the measurements into this PNG file."),
) -> None:
    """Run a workload both ways and compare them.

    Runs it as a container and as a VM, N times each, and compares what each costs and isolates.

    Options come before `--`, the command after it: isobox compare busybox -n 2 -- echo hi
    """
    from isobox.model.spec import WorkloadSpec
    from isobox.service import compare as service

    if plot is not None:
        _require_matplotlib()
    result = service.compare(_ctx(), WorkloadSpec(image, tuple(command or ())), runs=runs, warmup=warmup,
                             progress=_Progress())
    if plot is not None:
        _plot(result, plot)
    if json_output:
        output.print_json(result)
        return
    _print_comparison(result)
    if plot is not None:
        _say(f"plot: {plot}")


class _Progress:
    """Which run `compare` is making, on stderr: one line rewritten in place on a terminal, else one per run."""

    def __init__(self) -> None:
        import sys

        self.stream = sys.stderr
        self.terminal = self.stream.isatty()

    def __call__(self, step: Step) -> None:
        if self.terminal:
            self.stream.write(f"\r\x1b[K{step} …" + ("\n" if step.number == step.total else ""))
        else:
            self.stream.write(f"{step}\n")
        self.stream.flush()


def _seconds(s: Summary | None) -> str:
    return "no output" if s is None else f"{s.median:.2f} s ({s.low:.2f}-{s.high:.2f})"


def _size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _bytes(s: Summary | None) -> str:
    return "-" if s is None else f"{_size(s.median)} ({_size(s.low)}-{_size(s.high)})"


def _print_comparison(result: Comparison) -> None:
    command = " ".join(result.command) or "(the image's command)"
    _say(
        f"isobox compare {result.image} -- {command}: {result.runs} run(s) per kind after {result.warmup} "
        "warm-up; median (min-max)"
    )
    kinds = result.results
    rows: list[list[Any]] = [
        ["start to first output", *(_seconds(k.summary("first_output_s")) for k in kinds)],
        ["total time", *(_seconds(k.summary("total_s")) for k in kinds)],
        ["host memory, peak PSS", *(_bytes(k.summary("pss_bytes")) for k in kinds)],
        ["host memory, peak RSS", *(_bytes(k.summary("rss_bytes")) for k in kinds)],
        ["disk added per workload", *(_bytes(k.summary("disk_bytes")) for k in kinds)],
        ["disk shared per image", *(_size(k.shared_disk_bytes) for k in kinds)],
        ["kernel", *(k.isolation.kernel for k in kinds)],
        ["syscall surface", *(k.isolation.syscall_surface for k in kinds)],
        ["capabilities", *(k.isolation.capabilities for k in kinds)],
        ["namespaces", *(k.isolation.namespaces for k in kinds)],
        ["host process (monitor, VMM)", *(k.isolation.host_process for k in kinds)],
    ]
    _table(["", *(k.kind.value.upper() for k in kinds)], rows)
    for line in _ratios(result):
        _say(line)


def _ratios(result: Comparison) -> list[str]:
    by_kind = {k.kind.value: k for k in result.results}
    if set(by_kind) != {"container", "vm"}:
        return []
    lines = []
    for metric, what in (("first_output_s", "started (to first output)"), ("total_s", "finished")):
        c, v = by_kind["container"].summary(metric), by_kind["vm"].summary(metric)
        if c and v and c.median > 0:
            faster = "container" if c.median < v.median else "VM"
            ratio = max(c.median, v.median) / max(min(c.median, v.median), 1e-9)
            lines.append(f"the {faster} {what} {ratio:.1f}x faster")
    c, v = by_kind["container"].summary("pss_bytes"), by_kind["vm"].summary("pss_bytes")
    if c and v and c.median > 0:
        lines.append(f"the VM cost {v.median / c.median:.1f}x the host memory of the container")
    return lines


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        from isobox.errors import HostError

        raise HostError("--plot needs matplotlib: pip install matplotlib (scripts/setup installs it)",
                        op="compare --plot") from None


def _plot(result: Comparison, path: Path) -> None:
    """One panel per measure, bars on a log scale (a VM's figures are often 10-100 times a container's, which
    a linear scale flattens to nothing), each bar labelled with its median, whiskers from min to max."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to the file
    import matplotlib.pyplot as plt

    panels = (("first_output_s", "start to first output (s)", 1.0, "{:.2f}"),
              ("total_s", "total time (s)", 1.0, "{:.2f}"),
              ("pss_bytes", "host memory, peak PSS (MiB)", 1 / 2**20, "{:.1f}"),
              ("disk_bytes", "disk added (KiB)", 1 / 1024, "{:.0f}"))
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8))
    names = [k.kind.value for k in result.results]
    for axis, (metric, title, scale, fmt) in zip(axes, panels, strict=True):
        summaries = [k.summary(metric) for k in result.results]
        medians = [s.median * scale if s else 0.0 for s in summaries]
        floor = min((m for m in medians if m > 0), default=1.0) / 10  # a log axis has no zero
        heights = [max(m, floor) for m in medians]
        low = [max(h - (s.low * scale if s else h), 0.0) for h, s in zip(heights, summaries, strict=True)]
        high = [max((s.high * scale if s else h) - h, 0.0) for h, s in zip(heights, summaries, strict=True)]
        bars = axis.bar(names, heights, yerr=[low, high], capsize=6, color=["#4c72b0", "#dd8452"][: len(names)])
        axis.set_yscale("log")
        axis.bar_label(bars, labels=[fmt.format(m) if s else "n/a" for m, s in zip(medians, summaries, strict=True)],
                       padding=3, fontsize=9)
        axis.margins(y=0.25)
        axis.set_title(title + ", log scale", fontsize=10)
    figure.suptitle(f"{result.image} {' '.join(result.command)}: median, min-max of {result.runs} runs")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
