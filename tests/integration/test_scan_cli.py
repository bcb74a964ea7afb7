"""`isobox scan` on an image built here with planted risks: each is found, nothing else is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fixtures.oci_build import Entry, commit_image, layer_tar
from tests.integration.conftest import Cli

from isobox.service.context import open_context

pytestmark = pytest.mark.integration

DPKG_STATUS = b"""Package: openssh-server
Status: install ok installed
Version: 1:9.2p1-2

Package: sudo
Status: install ok installed
Version: 1.9.13p3-1
"""


def build_risky(isobox_root: Path, name: str = "localhost/risky:1") -> None:
    ctx = open_context(isobox_root)
    try:
        entries = [
            Entry("usr", "dir", mode=0o755),
            Entry("usr/bin", "dir", mode=0o755),
            Entry("usr/bin/sudo", data=b"#!/bin/sh\n", mode=0o4755),
            Entry("usr/bin/crontab", data=b"#!/bin/sh\n", mode=0o2755),
            Entry("srv", "dir", mode=0o777),
            Entry("tmp", "dir", mode=0o1777),
            Entry("var", "dir", mode=0o755),
            Entry("var/lib", "dir", mode=0o755),
            Entry("var/lib/dpkg", "dir", mode=0o755),
            Entry("var/lib/dpkg/status", data=DPKG_STATUS),
            Entry("etc", "dir", mode=0o755),
            Entry("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"),
        ]
        config = {"Cmd": ["true"], "Env": ["PATH=/usr/bin", "DB_PASSWORD=correct-horse-battery"]}
        commit_image(ctx.images, name, layer_tar(entries), config)
    finally:
        ctx.close()


def test_scan_finds_what_was_planted(cli: Cli, isobox_root: Path) -> None:
    build_risky(isobox_root)
    done = cli("scan", "localhost/risky:1", "--json", check=True)
    report = json.loads(done.stdout)
    found = {(f["kind"], f["subject"]) for f in report["findings"]}
    assert found == {
        ("runs_as_root", "root"),
        ("setuid", "/usr/bin/sudo"),
        ("setgid", "/usr/bin/crontab"),
        ("world_writable", "/srv"),
        ("secret_env", "DB_PASSWORD"),
    }
    assert "correct-horse" not in done.stdout  # the secret's value is never printed
    assert [(p["name"], p["version"], p["source"]) for p in report["packages"]] == [
        ("openssh-server", "1:9.2p1-2", "dpkg"),
        ("sudo", "1.9.13p3-1", "dpkg"),
    ]


def test_scan_table(cli: Cli, isobox_root: Path) -> None:
    build_risky(isobox_root)
    done = cli("scan", "localhost/risky:1", "--packages", check=True)
    assert "setuid" in done.stdout and "/usr/bin/sudo" in done.stdout
    assert "packages: 2 (from dpkg)" in done.stdout
    assert done.stdout.index("medium") < done.stdout.index("low")  # the worst first
    assert "openssh-server" in done.stdout


PRIVATE_KEY = (b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
               b"-----END OPENSSH PRIVATE KEY-----\n")
CERTIFICATE = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUa\n-----END CERTIFICATE-----\n"


def test_secrets_in_files_are_found_with_their_severity(cli: Cli, isobox_root: Path) -> None:
    ctx = open_context(isobox_root)
    try:
        entries = [
            Entry("root", "dir", mode=0o700), Entry("root/.ssh", "dir", mode=0o700),
            Entry("root/.ssh/id_ed25519", data=PRIVATE_KEY, mode=0o600),
            Entry("app", "dir", mode=0o755),
            Entry("app/.npmrc", data=b"//registry.npmjs.org/:_authToken=npm_abcdefgh12345678\n"),
            Entry("app/server.pem", data=CERTIFICATE),  # a public certificate: no secret
            Entry("app/config.json", data=b'{"debug": true}'),  # a name that may hold one, content that does not
            Entry("var", "dir", mode=0o755), Entry("var/lib", "dir", mode=0o755), Entry("var/lib/rpm", "dir"),
            Entry("var/lib/rpm/rpmdb.sqlite", data=b"SQLite format 3\0"),
        ]  # fmt: skip
        commit_image(ctx.images, "localhost/leaky:1", layer_tar(entries), {"Cmd": ["true"], "User": "1000"})
    finally:
        ctx.close()
    report = json.loads(cli("scan", "localhost/leaky:1", "--json", check=True).stdout)
    found = {(f["kind"], f["subject"], f["severity"]) for f in report["findings"]}
    assert found == {("secret_file", "/root/.ssh/id_ed25519", "high"), ("secret_file", "/app/.npmrc", "high")}
    assert report["unread_databases"] == ["rpm"] and report["package_databases"] == []
    table = cli("scan", "localhost/leaky:1", check=True).stdout
    assert "b3BlbnNz" not in table and "npm_abcdefgh" not in table  # the secrets themselves are never shown
    assert "high" in table and "a private key" in table
    assert "an rpm database is present, and isobox does not read it" in table


def test_builtin_busybox_only_runs_as_root(cli: Cli) -> None:
    report = json.loads(cli("scan", "busybox", "--json", check=True).stdout)
    assert [f["kind"] for f in report["findings"]] == ["runs_as_root"]
    assert report["packages"] == []
    table = cli("scan", "busybox", check=True).stdout
    assert "packages: not counted: the image has no dpkg or apk database" in table


def test_scan_of_a_missing_image_is_a_clear_error(cli: Cli) -> None:
    done = cli("scan", "localhost/nothing:1")
    assert done.returncode == 125
    assert "localhost/nothing:1" in done.stderr and "not in the store" in done.stderr
