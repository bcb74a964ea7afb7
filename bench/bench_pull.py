"""Pull + unpack of a 2-layer Debian image from a local TLS + htpasswd registry: isobox vs podman vs skopeo+umoci.

What a user gets, measured as a user runs it:

- The image: Debian 12 (debootstrap --variant=minbase, cached under /var/tmp/isobox-test-cache by date)
  without the package caches and lists (as Docker's official images), in two layers made by umoci: the
  system, and an "application" layer that deletes the documentation (whiteouts) and adds files.
  About 50 MB compressed.
- The registry: docker-registry on 127.0.0.1 with TLS (a CA made for the run) and htpasswd basic auth;
  both clients read the same credentials file (REGISTRY_AUTH_FILE, as `podman login` writes it) and
  trust the CA through their own flag.
- isobox: the installed `isobox` command (the one beside the Python running the benchmark, which honours
  PYTHONPATH), into a fresh store each run (a new ISOBOX_ROOT).
- podman: at its defaults but for `--runtime runc --cgroup-manager cgroupfs` (crun refuses hybrid
  cgroups here), with a fresh storage each run (a new --root/--runroot, like isobox's fresh store).
- skopeo copy + umoci unpack: the same download and unpack with the two reference tools.

Every run downloads, verifies and unpacks every layer; setup (removing the previous run's store) is not
timed. Run it with nothing else heavy on the machine: it is CPU-bound on 2 cores.
"""

from __future__ import annotations

import base64
import datetime
import json
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
ISOBOX = Path(sys.executable).parent / "isobox"
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
    """The two-layer OCI image of ``rootfs``, made with umoci, cached next to the rootfs."""
    final = rootfs.with_name(rootfs.name + "-layout-2l")
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
        # Like Docker's official images: an empty /dev (the runtime provides one), no package caches.
        for directory in ("dev", "var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (target / directory).iterdir():
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
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
    """podman at its defaults, on a private storage (so every run starts empty), with runc and cgroupfs."""
    return ["podman", "--root", str(podman_root / "storage"), "--runroot", str(podman_root / "run"),
            "--runtime", "runc", "--cgroup-manager", "cgroupfs"]


def cases(registry: registries.Registry, work: Path) -> list[Case]:
    assert registry.tls is not None
    name = f"{registry.host}/{IMAGE}"
    isobox_root, podman_root, oci_dir = work / "isobox", work / "podman", work / "oci"
    podman = podman_argv(podman_root)
    certs = _cert_dir(work, registry)
    env = {"REGISTRY_AUTH_FILE": str(work / "auth.json")}
    copy_unpack = (f"skopeo copy -q --src-cert-dir {certs} docker://{name} oci:{oci_dir}/layout:1 && "
                   f"umoci unpack --image {oci_dir}/layout:1 {oci_dir}/bundle")
    return [
        Case("podman pull", [*podman, "pull", "-q", "--cert-dir", str(certs), name],
             setup=lambda: _reset_podman(podman, podman_root), env=env),
        Case("isobox pull", [str(ISOBOX), "pull", "-q", "--ca-cert", str(registry.tls.ca_cert), name],
             setup=lambda: _fresh(isobox_root), env={**env, "ISOBOX_ROOT": str(isobox_root)}, requires=()),
        Case("skopeo copy + umoci unpack", ["sh", "-c", copy_unpack], setup=lambda: _fresh(oci_dir), env=env,
             requires=("skopeo", "umoci")),
    ]


def _cert_dir(work: Path, registry: registries.Registry) -> Path:
    """A directory with just the registry's CA (podman's and skopeo's --cert-dir read every *.crt/*.key)."""
    assert registry.tls is not None
    certs = work / "certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(registry.tls.ca_cert, certs / "ca.crt")
    return certs


def _reset_podman(podman: list[str], root: Path) -> None:
    # podman's storage holds overlay layers it may have mounted; let podman itself drop them first.
    if root.exists():
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True, timeout=120)
    _fresh(root)


def _write_auth(path: Path, registry: registries.Registry) -> None:
    """The credentials file `podman login` writes (containers-auth.json(5)), read by all three clients."""
    token = base64.b64encode(f"{registries.USER}:{registries.PASSWORD}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    path.chmod(0o600)


def main(runs: int = 7) -> None:
    require("docker-registry", "umoci", "skopeo", "htpasswd", "openssl")
    if not ISOBOX.exists():
        raise Skipped(f"{ISOBOX} not installed (run scripts/setup)")
    layout = debian_layout(debian_rootfs())
    work = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="isobox-bench-pull-"))
    registry = registries.start(work / "registry", tls=registries.make_certs(work / "tls"),
                                htpasswd=registries.htpasswd_file(work))
    try:
        _write_auth(work / "auth.json", registry)
        assert registry.tls is not None
        _run("skopeo", "copy", "-q", "--dest-cert-dir", str(_cert_dir(work, registry)), "--dest-creds",
             f"{registries.USER}:{registries.PASSWORD}", f"oci:{layout}:1", f"docker://{registry.host}/{IMAGE}")
        run_cases("pull", cases(registry, work), runs=runs, warmup=1, baseline="podman pull")
    finally:
        registry.stop()
        _reset_podman(podman_argv(work / "podman"), work / "podman")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
