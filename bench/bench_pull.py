"""Pull + unpack of a multi-layer Debian image from a local registry: isobox vs podman vs skopeo+umoci.

The image: Debian 12 (debootstrap --variant=minbase, cached under /var/tmp/isobox-test-cache by date),
in three layers made by umoci: the system without /usr/share; /usr/share; an "application" layer that
deletes the documentation (whiteouts) and adds files. A docker-registry on 127.0.0.1 serves it over
plain HTTP. Every run starts from an empty store, so each case downloads, verifies and unpacks all
layers:

- isobox:       isobox pull --insecure (a private ISOBOX_ROOT)
- podman:       podman pull --tls-verify=false (a private --root/--runroot, overlay storage) — the baseline
- skopeo+umoci: skopeo copy to an OCI layout, then umoci unpack
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import Case, Skipped, require, run_cases

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the registry fixtures the integration tests use

from fixtures import registry as registries  # noqa: E402

CACHE = Path("/var/tmp/isobox-test-cache")
ISOBOX = HERE.parent / ".venv/bin/isobox"
IMAGE = "bench/debian:1"


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')[-2000:]}")


def debian_rootfs() -> Path:
    """A debootstrap'd Debian 12 minbase, built once a day (about half a minute with a nearby mirror)."""
    final = CACHE / f"debian-bookworm-{datetime.date.today():%Y%m%d}"
    if (final / "etc/debian_version").is_file():
        return final
    require("debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=CACHE, prefix=".debootstrap-"))
    try:
        _run("debootstrap", "--variant=minbase", "bookworm", str(work / "rootfs"), "http://deb.debian.org/debian")
        (work / "rootfs").rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def debian_layout(rootfs: Path) -> Path:
    """The three-layer OCI image of ``rootfs``, made with umoci, cached next to the rootfs."""
    final = rootfs.with_name(rootfs.name + "-layout2")
    if (final / "index.json").is_file():
        return final
    work = Path(tempfile.mkdtemp(dir=CACHE, prefix=".layout-"))
    try:
        image, bundle = work / "layout", work / "bundle"
        _run("umoci", "init", "--layout", str(image))
        _run("umoci", "new", "--image", f"{image}:1")
        _run("umoci", "unpack", "--image", f"{image}:1", str(bundle))
        target = bundle / "rootfs"
        _run("cp", "-a", f"{rootfs}/.", str(target))
        # Like Docker's official images: an empty /dev (the runtime provides one), no device nodes.
        for entry in (target / "dev").iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        shutil.move(str(target / "usr/share"), str(work / "share"))
        _run("umoci", "repack", "--refresh-bundle", "--image", f"{image}:1", str(bundle))
        shutil.move(str(work / "share"), str(target / "usr/share"))
        _run("umoci", "repack", "--refresh-bundle", "--image", f"{image}:1", str(bundle))
        shutil.rmtree(target / "usr/share/doc")
        (target / "opt/app").mkdir(parents=True)
        for i in range(50):
            (target / f"opt/app/module{i}.txt").write_text(f"module {i}\n" * 200)
        _run("umoci", "repack", "--image", f"{image}:1", str(bundle))
        _run("umoci", "config", "--image", f"{image}:1", "--config.cmd", "bash", "--os", "linux",
             "--architecture", "amd64")
        image.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _fresh(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def podman_argv(podman_root: Path) -> list[str]:
    """podman with private storage (overlay, as on a default install), so runs start empty."""
    return ["podman", "--root", str(podman_root / "storage"), "--runroot", str(podman_root / "run"),
            "--storage-driver", "overlay", "--events-backend", "none"]


def cases(registry: registries.Registry, work: Path) -> list[Case]:
    name = f"{registry.host}/{IMAGE}"
    isobox_root, podman_root, oci_dir = work / "isobox", work / "podman", work / "oci"
    podman = podman_argv(podman_root)
    copy_unpack = (f"skopeo copy -q --src-tls-verify=false docker://{name} oci:{oci_dir}/layout:1 && "
                   f"umoci unpack --image {oci_dir}/layout:1 {oci_dir}/bundle")
    return [
        Case("podman pull", [*podman, "pull", "-q", "--tls-verify=false", name],
             setup=lambda: _reset_podman(podman, podman_root)),
        Case("isobox pull", [str(ISOBOX), "--root", str(isobox_root), "pull", "-q", "--insecure", name],
             setup=lambda: _fresh(isobox_root), requires=()),
        Case("skopeo copy + umoci unpack", ["sh", "-c", copy_unpack], setup=lambda: _fresh(oci_dir),
             requires=("skopeo", "umoci")),
    ]


def _reset_podman(podman: list[str], root: Path) -> None:
    # podman's storage holds overlay layers it may have mounted; let podman itself drop them first.
    if root.exists():
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True, timeout=120)
    _fresh(root)


def main(runs: int = 5) -> None:
    require("docker-registry", "umoci", "skopeo")
    if not ISOBOX.exists():
        raise Skipped(f"{ISOBOX} not installed (run scripts/setup)")
    layout = debian_layout(debian_rootfs())
    work = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="isobox-bench-pull-"))
    registry = registries.start(work / "registry")
    try:
        _run("skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{registry.host}/{IMAGE}")
        run_cases("pull", cases(registry, work), runs=runs, warmup=1, baseline="podman pull")
    finally:
        registry.stop()
        _reset_podman(podman_argv(work / "podman"), work / "podman")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
