"""The isolation policy through the CLI: run/create follow it, explicit flags it forbids are refused with the
rule's name (exit 125), and `policy explain` says which rule decides for every rule kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fixtures.oci_build import Entry, commit_image, layer_tar
from tests.integration.conftest import Cli
from tests.integration.test_scan_cli import build_risky

from isobox.service.context import open_context

pytestmark = pytest.mark.integration

POLICY = """
default = "vm"

[[rule]]
name = "no-privileged"
action = "refuse"
privileged = true
reason = "not on this host"

[[rule]]
name = "admin-caps"
action = "vm"
cap_add = ["SYS_*", "ALL"]

[[rule]]
name = "host-mounts"
action = "vm"
host_mount_paths = ["/etc*", "/"]

[[rule]]
name = "untrusted-label"
action = "refuse"
labels = { trust = "none" }

[[rule]]
name = "risky-content"
action = "vm"
scan = ["setuid", "secret_env"]

[[rule]]
name = "ssh-inside"
action = "refuse"
packages = ["openssh-server"]

[[rule]]
name = "reviewed"
action = "container"
digests = ["{reviewed}"]

[[rule]]
name = "root-from-elsewhere"
action = "vm"
runs_as_root = true
not_registry = ["docker.io", "registry.example.com"]

[[rule]]
name = "pinned-from-mine"
action = "container"
registry = ["registry.example.com"]
digest_pinned = true

[[rule]]
name = "hub-library"
action = "container"
repository = ["docker.io/library/*"]
not_user = ["nobody"]
"""


@pytest.fixture
def policy_file(tmp_path: Path, isobox_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The policy above in force through ISOBOX_POLICY, with images that each reach one of its rules."""
    ctx = open_context(isobox_root)
    try:
        plain = layer_tar([Entry("etc", "dir", mode=0o755), Entry("etc/passwd", data=b"root:x:0:0::/:/bin/sh\n")])
        mine = commit_image(ctx.images, "registry.example.com/team/app:1", plain, {"Cmd": ["true"]})
        # As a pull of registry.example.com/team/app@<digest> records it (a RepoDigest).
        ctx.images.add_repo_digest(mine, "registry.example.com/team/app", mine.manifest_digest)
        reviewed = commit_image(ctx.images, "other.example/reviewed:1", plain + b"\0" * 512, {"Cmd": ["true"]})
        commit_image(ctx.images, "other.example/unknown:1", plain + b"\0" * 1024, {"Cmd": ["true"]})
        commit_image(ctx.images, "other.example/app-user:1", plain + b"\0" * 1536, {"Cmd": ["true"], "User": "1000"})
    finally:
        ctx.close()
    build_risky(isobox_root, "other.example/risky:1")
    (tmp_path / "mine-digest").write_text(mine.manifest_digest)
    (tmp_path / "reviewed-digest").write_text(reviewed.manifest_digest)
    (tmp_path / "mine-id").write_text(mine.id)
    path = tmp_path / "policy.toml"
    path.write_text(POLICY.replace("{reviewed}", reviewed.manifest_digest))
    monkeypatch.setenv("ISOBOX_POLICY", str(path))
    return path


def explain(cli: Cli, *args: str) -> dict[str, object]:
    done = cli("policy", "explain", "--json", *args)
    assert done.returncode in (0, 125), done.stderr
    result = json.loads(done.stdout)
    assert isinstance(result, dict)
    return result


def rule_of(cli: Cli, *args: str) -> tuple[str, str | None]:
    result = explain(cli, *args)
    decision = result["decision"]
    assert isinstance(decision, dict)
    kind = result["kind"]
    return str(decision["rule"]), None if kind is None else str(kind)


def test_every_rule_kind_decides(cli: Cli, policy_file: Path, tmp_path: Path) -> None:
    mine_digest = (tmp_path / "mine-digest").read_text()
    assert rule_of(cli, "--privileged", "busybox") == ("no-privileged", None)
    assert rule_of(cli, "--cap-add", "sys_admin", "busybox") == ("admin-caps", "vm")
    assert rule_of(cli, "-v", "/etc:/host-etc:ro", "busybox") == ("host-mounts", "vm")
    assert rule_of(cli, "-v", "/srv:/srv", "busybox") == ("hub-library", "container")
    (tmp_path / "etc-link").symlink_to("/etc")
    assert rule_of(cli, "-v", f"{tmp_path}/etc-link:/x", "busybox") == ("host-mounts", "vm")
    assert rule_of(cli, "-v", "/srv/../etc:/x", "busybox") == ("host-mounts", "vm")
    assert rule_of(cli, "--label", "trust=none", "busybox") == ("untrusted-label", None)
    assert rule_of(cli, "other.example/risky:1") == ("risky-content", "vm")
    assert rule_of(cli, "other.example/unknown:1") == ("root-from-elsewhere", "vm")
    assert rule_of(cli, "--user", "1000", "other.example/unknown:1") == ("default", "vm")
    assert rule_of(cli, "other.example/app-user:1") == ("default", "vm")
    assert rule_of(cli, "registry.example.com/team/app:1") == ("default", "vm")
    assert rule_of(cli, f"registry.example.com/team/app@{mine_digest}") == ("pinned-from-mine", "container")
    reviewed_digest = (tmp_path / "reviewed-digest").read_text()
    # Another image's digest behind my registry's name is not one of its RepoDigests: not found, not passed
    # off as mine.
    done = cli("policy", "explain", "--json", f"registry.example.com/team/app@{reviewed_digest}")
    assert done.returncode != 0 and "not in the store" in done.stderr
    mine_id = (tmp_path / "mine-id").read_text()
    assert rule_of(cli, mine_id[:19]) == ("pinned-from-mine", "container")  # by id: its stored name stands in
    assert rule_of(cli, "other.example/reviewed:1") == ("reviewed", "container")
    assert rule_of(cli, "busybox") == ("hub-library", "container")
    assert rule_of(cli, "--user", "nobody", "busybox") == ("default", "vm")
    assert rule_of(cli, "--vm", "busybox") == ("hub-library", "vm")  # more isolation is never refused


def test_scan_rule_refuses_by_package(cli: Cli, policy_file: Path, isobox_root: Path) -> None:
    text = policy_file.read_text().replace('scan = ["setuid", "secret_env"]', 'scan = ["world_writable"]\nuser = ["x"]')
    policy_file.write_text(text)
    assert rule_of(cli, "other.example/risky:1") == ("ssh-inside", None)
    done = cli("run", "--rm", "other.example/risky:1")
    assert done.returncode == 125
    assert "refused by policy rule 'ssh-inside'" in done.stderr
    assert "package openssh-server" in done.stderr


def test_explain_prints_the_rules_it_passed(cli: Cli, policy_file: Path) -> None:
    done = cli("policy", "explain", "--cap-add", "NET_ADMIN", "busybox", check=True)
    assert f"policy:   {policy_file}" in done.stdout
    assert "rule no-privileged: no match (privileged = true does not hold)" in done.stdout
    assert "rule admin-caps: no match (cap_add = [\"SYS_*\", \"ALL\"] does not hold)" in done.stdout
    assert "decision: rule 'hub-library' → container" in done.stdout
    assert "result:   runs as container" in done.stdout


def test_refusals_are_clear_errors(cli: Cli, policy_file: Path) -> None:
    done = cli("run", "--rm", "--privileged", "busybox", "true")
    assert done.returncode == 125
    assert "refused by policy rule 'no-privileged': requests --privileged (not on this host)" in done.stderr
    done = cli("run", "--rm", "--container", "other.example/unknown:1")
    assert done.returncode == 125
    assert "--container is not allowed: policy rule 'root-from-elsewhere' requires a VM" in done.stderr
    done = cli("create", "--vm", "--container", "busybox")
    assert done.returncode == 125 and "exclude each other" in done.stderr
    assert cli("ps", "-a", "-q").stdout.split() == []  # nothing was created


def test_run_and_create_follow_the_policy(cli: Cli, policy_file: Path) -> None:
    done = cli("run", "--rm", "busybox", "echo", "as-container", check=True)
    assert done.stdout == "as-container\n"
    created = cli("create", "other.example/unknown:1", check=True).stdout.strip()
    kinds = {r["id"]: r["kind"] for r in json.loads(cli("ps", "-a", "--json", check=True).stdout)}
    assert kinds[created] == "vm"
    cli("rm", created, check=True)


def test_policy_file_from_the_flag_and_missing_files(cli: Cli, policy_file: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ISOBOX_POLICY")
    assert rule_of(cli, "--policy", str(policy_file), "--privileged", "busybox") == ("no-privileged", None)
    done = cli("policy", "explain", "--policy", str(tmp_path / "nope.toml"), "busybox")
    assert done.returncode == 125 and "nope.toml does not exist" in done.stderr
    done = cli("policy", "show", "--policy", str(policy_file), check=True)
    assert "no-privileged" in done.stdout and "default" in done.stdout
    shown = json.loads(cli("policy", "show", "--json", "--policy", str(policy_file), check=True).stdout)
    assert shown["default"] == "vm" and shown["rules"][0]["name"] == "no-privileged"
    assert shown["rules"][0]["conditions"] == [{"key": "privileged", "value": True, "negated": False}]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nname = "x"\naction = "vm"\nprivilged = true\n')
    done = cli("policy", "show", "--policy", str(bad))
    assert done.returncode == 125
    assert "unknown condition 'privilged'" in done.stderr and str(bad) in done.stderr


@pytest.mark.skipif(Path("/etc/isobox/policy.toml").exists(), reason="this host has a system-wide policy")
def test_without_a_policy_file_everything_runs_as_asked(cli: Cli) -> None:
    done = cli("policy", "explain", "--privileged", "busybox", check=True)
    assert "built-in (no policy file)" in done.stdout and "runs as container" in done.stdout


def test_compare_fails_fast_on_a_kind_the_policy_forbids(cli: Cli, policy_file: Path) -> None:
    done = cli("compare", "other.example/unknown:1", "-n", "1", "--", "true")
    assert done.returncode == 125
    assert "--container is not allowed: policy rule 'root-from-elsewhere' requires a VM" in done.stderr
    assert cli("ps", "-a", "-q").stdout.split() == []
