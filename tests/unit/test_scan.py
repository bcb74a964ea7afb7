"""The image scan on hand-made layer directories: merged as overlayfs would, findings, package databases."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from isobox.images.scan import (
    MAX_LISTED,
    merged_entries,
    parse_apk_installed,
    parse_dpkg_status,
    read_image_file,
    scan_layers,
    user_is_root,
)
from isobox.model.image_config import ImageConfig
from isobox.model.policy import FindingKind

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="whiteouts (mknod) and trusted.* xattrs need root")

DPKG = """Package: openssh-server
Status: install ok installed
Version: 1:9.2p1-2
Description: secure shell server
 a continuation line: with a colon

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

Package: bash
Status: install ok installed
Version: 5.2.15-2
"""
APK = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nP:busybox\nV:1.36.1-r5\n"


def write(layer: Path, rel: str, data: str = "", mode: int = 0o644) -> Path:
    path = layer / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    path.chmod(mode)
    return path


def whiteout(layer: Path, rel: str) -> None:
    path = layer / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def kinds(layers: list[Path], config: ImageConfig | None = None) -> dict[str, list[str]]:
    report = scan_layers(tuple(str(p) for p in layers), config or ImageConfig(user="app"))
    found: dict[str, list[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.kind.value, []).append(finding.subject)
    return found


def test_modes(tmp_path: Path) -> None:
    layer = tmp_path / "l0"
    write(layer, "usr/bin/su", mode=0o4755)
    write(layer, "usr/bin/wall", mode=0o2755)
    write(layer, "etc/shared.conf", mode=0o666)
    (layer / "tmp").mkdir(mode=0o777)
    (layer / "tmp").chmod(0o1777)  # sticky: the norm, not a finding
    (layer / "drop").mkdir()
    (layer / "drop").chmod(0o777)
    (layer / "bin").mkdir()
    os.symlink("/usr/bin/su", layer / "bin/su")  # a symlink's 0777 means nothing
    found = kinds([layer])
    assert found[FindingKind.SETUID] == ["/usr/bin/su"]
    assert found[FindingKind.SETGID] == ["/usr/bin/wall"]
    assert sorted(found[FindingKind.WORLD_WRITABLE]) == ["/drop", "/etc/shared.conf"]
    assert FindingKind.RUNS_AS_ROOT not in found


def test_upper_layers_win_and_hide(tmp_path: Path) -> None:
    lower, upper = tmp_path / "l0", tmp_path / "l1"
    write(lower, "usr/bin/su", mode=0o4755)
    write(lower, "opt/tool/helper", mode=0o4755)
    write(upper, "usr/bin/su", mode=0o755)  # replaced without the bit
    write(upper, "opt/tool", "now a file")  # a file where a directory was hides everything below it
    assert FindingKind.SETUID not in kinds([lower, upper])
    paths = {path for path, _, _ in merged_entries((str(lower), str(upper)))}
    assert "/opt/tool/helper" not in paths
    assert "/usr/bin/su" in paths


@needs_root
def test_whiteouts_and_opaque_directories(tmp_path: Path) -> None:
    lower, upper = tmp_path / "l0", tmp_path / "l1"
    write(lower, "usr/bin/su", mode=0o4755)
    write(lower, "srv/data/open", mode=0o666)
    write(lower, "srv/keep", mode=0o666)
    whiteout(upper, "usr/bin/su")
    (upper / "srv/data").mkdir(parents=True)
    os.setxattr(upper / "srv/data", "trusted.overlay.opaque", b"y")
    found = kinds([lower, upper])
    assert FindingKind.SETUID not in found
    assert found[FindingKind.WORLD_WRITABLE] == ["/srv/keep"]
    layers = (str(lower), str(upper))
    assert read_image_file(layers, "usr/bin/su") is None
    assert read_image_file(layers, "srv/data/open") is None
    assert read_image_file(layers, "srv/keep") == ""


def test_read_image_file_never_follows_symlinks(tmp_path: Path) -> None:
    outside = write(tmp_path, "host-secret", "host data")
    layer = tmp_path / "l0"
    (layer / "etc").mkdir(parents=True)
    os.symlink(outside, layer / "etc/passwd")
    os.symlink(tmp_path, layer / "var")
    assert read_image_file((str(layer),), "etc/passwd") is None
    assert read_image_file((str(layer),), "var/host-secret") is None
    write(layer, "etc/group", "root:x:0:\n")
    assert read_image_file((str(layer),), "/etc/group") == "root:x:0:\n"


def test_symlinked_package_database_is_not_read(tmp_path: Path) -> None:
    outside = write(tmp_path, "status", DPKG)
    layer = tmp_path / "l0"
    (layer / "var/lib/dpkg").mkdir(parents=True)
    os.symlink(outside, layer / "var/lib/dpkg/status")
    report = scan_layers((str(layer),), ImageConfig())
    assert report.packages == ()


def test_packages_from_dpkg_and_apk(tmp_path: Path) -> None:
    layer = tmp_path / "l0"
    write(layer, "var/lib/dpkg/status", DPKG)
    write(layer, "var/lib/dpkg/status.d/base-files", "Package: base-files\nVersion: 12.4\n")
    write(layer, "lib/apk/db/installed", APK)
    report = scan_layers((str(layer),), ImageConfig())
    assert [(p.name, p.version, p.source) for p in report.packages] == [
        ("base-files", "12.4", "dpkg"),
        ("bash", "5.2.15-2", "dpkg"),
        ("busybox", "1.36.1-r5", "apk"),
        ("musl", "1.2.4-r2", "apk"),
        ("openssh-server", "1:9.2p1-2", "dpkg"),
    ]
    assert [p.name for p in parse_dpkg_status(DPKG)] == ["openssh-server", "bash"]
    assert [p.name for p in parse_apk_installed(APK)] == ["musl", "busybox"]


def test_secret_looking_environment(tmp_path: Path) -> None:
    env = (
        ("DB_PASSWORD", "hunter2hunter2"),
        ("API_TOKEN", "${TOKEN}"),  # a reference, not a secret
        ("PASSWORD_FILE", "/run/secrets/db"),  # a path, not a secret
        ("AWS_ID", "AKIAABCDEFGHIJKLMNOP"),  # shaped like an AWS access key id
        ("PATH", "/usr/bin"),
        ("GITHUB_AUTH", ""),
    )
    report = scan_layers((str(tmp_path),), ImageConfig(env=env, user="1000"))
    secrets = [f for f in report.findings if f.kind is FindingKind.SECRET_ENV]
    assert sorted(f.subject for f in secrets) == ["AWS_ID", "DB_PASSWORD"]
    assert all("hunter2" not in f.detail and "AKIA" not in f.detail for f in secrets)


def test_runs_as_root() -> None:
    passwd = "root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"
    for user in ("", "0", "root", "root:root", "0:1000", "toor"):
        assert user_is_root(user, passwd), user
    for user in ("1000", "app", "app:root", "ghost"):
        assert not user_is_root(user, passwd), user


def test_image_default_user_root_is_a_finding(tmp_path: Path) -> None:
    layer = tmp_path / "l0"
    write(layer, "etc/passwd", "root:x:0:0::/root:/bin/sh\nadmin:x:0:0::/:/bin/sh\n")
    report = scan_layers((str(layer),), ImageConfig(user="admin"))
    assert FindingKind.RUNS_AS_ROOT.value in report.kinds


def test_counts_are_complete_but_listing_is_capped(tmp_path: Path) -> None:
    layer = tmp_path / "l0"
    for index in range(MAX_LISTED + 5):
        write(layer, f"bin/s{index}", mode=0o4755)
    report = scan_layers((str(layer),), ImageConfig(user="1"))
    assert dict(report.counts)[FindingKind.SETUID.value] == MAX_LISTED + 5
    assert len([f for f in report.findings if f.kind is FindingKind.SETUID]) == MAX_LISTED
