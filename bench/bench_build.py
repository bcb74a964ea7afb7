"""Image builds: `isobox build` vs `podman build` (Buildah), the same 6-step busybox Dockerfile, side by side.

Three situations, each its own table with podman as the baseline:

- **cold**: every step built (``--no-cache`` for both: the same work as an empty cache, the base image in the
  store);
- **no change**: the same context built again, every step from the cache;
- **one changed COPY**: a file the second COPY reads changed before each run (untimed), so that COPY and the
  RUN after it are built again, the steps before come from the cache.

And the cost of ``--vm`` (every RUN step in a VM, under TCG here): isobox's cold build in containers and in
VMs, fewer runs (a VM boots in about 3 s).

Both tools build FROM the same busybox image: isobox's built-in one, saved with `isobox save` and loaded
into podman with `podman load`. podman runs at its defaults on a private storage (``--root``,
``--runroot``) with ``--runtime runc --cgroup-manager cgroupfs`` (crun refuses hybrid cgroups here); isobox
on a private state root (ISOBOX_ROOT), the installed `isobox` command (which honours PYTHONPATH).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.harness import Case, Skipped, require, run_cases

ISOBOX = Path(sys.executable).parent / "isobox"
DOCKERFILE = """\
FROM busybox
ENV APP=/app
WORKDIR /app
COPY config.txt /app/config.txt
RUN echo built > /app/built && cat /app/config.txt
COPY data.txt /app/data.txt
RUN wc -c /app/data.txt > /app/size
"""


def _run(*argv: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=600, env=None if env is None else {**os.environ, **env})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')[-2000:]}")


def _context(work: Path, name: str) -> Path:
    ctx = work / name
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "config.txt").write_text("debug=false\n")
    (ctx / "data.txt").write_text("data 0\n")
    return ctx


def podman_argv(root: Path) -> list[str]:
    return ["podman", "--root", str(root / "storage"), "--runroot", str(root / "run"), "--runtime", "runc",
            "--cgroup-manager", "cgroupfs"]


def _changer(ctx: Path) -> Callable[[], None]:
    counter = itertools.count(1)

    def change() -> None:
        (ctx / "data.txt").write_text(f"data {next(counter)}\n")

    return change


def main(runs: int = 9) -> None:
    require("podman", "runc")
    if not ISOBOX.exists():
        raise Skipped(f"{ISOBOX} not installed (run scripts/setup)")
    work = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="isobox-bench-build-"))
    isobox_env = {"ISOBOX_ROOT": str(work / "isobox")}
    podman = podman_argv(work / "podman")
    isobox = [str(ISOBOX), "build", "-q"]
    try:
        _run(str(ISOBOX), "system", "setup-builtin", env=isobox_env)
        _run(str(ISOBOX), "save", "-o", str(work / "busybox.tar"), "busybox", env=isobox_env)
        _run(*podman, "load", "-q", "-i", str(work / "busybox.tar"))
        cold, same, changed = (_context(work, name) for name in ("cold", "same", "changed"))
        for tool in (isobox, [*podman, "build", "-q"]):  # the caches the warm cases start from
            _run(*tool, str(same), env=isobox_env)
            _run(*tool, str(changed), env=isobox_env)
        pod = [*podman, "build", "-q"]
        change_isobox, change_podman = _changer(changed), _changer(changed)
        run_cases("build_cold", [
            Case("isobox build", [*isobox, "--no-cache", str(cold)], env=isobox_env, requires=()),
            Case("podman build", [*pod, "--no-cache", str(cold)]),
        ], runs=runs, warmup=1, baseline="podman build")
        run_cases("build_no_change", [
            Case("isobox build", [*isobox, str(same)], env=isobox_env, requires=()),
            Case("podman build", [*pod, str(same)]),
        ], runs=runs, warmup=1, baseline="podman build")
        run_cases("build_changed_copy", [
            Case("isobox build", [*isobox, str(changed)], env=isobox_env, requires=(), setup=change_isobox),
            Case("podman build", [*pod, str(changed)], setup=change_podman),
        ], runs=runs, warmup=1, baseline="podman build")
        run_cases("build_vm", [
            Case("isobox build (containers)", [*isobox, "--no-cache", str(cold)], env=isobox_env, requires=()),
            Case("isobox build --vm", [*isobox, "--vm", "--no-cache", str(cold)], env=isobox_env, requires=(),
                 timeout_s=300),
            Case("podman build", [*pod, "--no-cache", str(cold)]),
        ], runs=max(3, runs // 3), warmup=1, baseline="podman build")
    finally:
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True, timeout=300)
        subprocess.run([str(ISOBOX), "builder", "prune"], capture_output=True, timeout=300,
                       env={**os.environ, **isobox_env})
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
