"""`isobox compare` on the built-in busybox: both kinds measured, numbers consistent, container faster to start
here; and a workload the policy sends to a VM really boots its own kernel.

Two measured runs and one warm-up per kind keep this file near half a minute under TCG.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(300)]


def require_vm(cli: Cli) -> None:
    facts = json.loads(cli("info", "--json", check=True).stdout)
    accel, kernel = str(facts.get("vm_accelerator", "")), str(facts.get("vm_kernel", ""))
    if accel.startswith("unavailable") or kernel.startswith("missing"):
        pytest.skip(f"isobox info says the VM driver is unavailable: {accel}; {kernel}")


def test_compare_measures_both_kinds(cli: Cli, tmp_path: Path) -> None:
    require_vm(cli)
    plot = tmp_path / "compare.png"
    done = cli("compare", "busybox", "-n", "2", "--warmup", "1", "--json", "--plot", str(plot), "--", "echo", "hi",
               timeout=240)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["runs"], result["warmup"], result["command"]) == (2, 1, ["echo", "hi"])
    by_kind = {r["kind"]: r for r in result["results"]}
    assert set(by_kind) == {"container", "vm"}
    for kind, measured in by_kind.items():
        assert len(measured["samples"]) == 2, kind
        for run in measured["samples"]:
            assert (run["output"], run["exit_code"]) == ("hi\n", 0), kind
            assert 0 < run["first_output_s"] <= run["total_s"], kind
            assert 0 < run["pss_bytes"] <= run["rss_bytes"], kind
            assert run["disk_bytes"] > 0, kind
    container, vm = by_kind["container"], by_kind["vm"]

    def median_start(measured: dict[str, list[dict[str, float]]]) -> float:
        starts = sorted(run["first_output_s"] for run in measured["samples"])
        return (starts[0] + starts[-1]) / 2

    assert median_start(container) < median_start(vm)  # an ordering, not a timing: a VM boots a kernel
    assert container["isolation"]["kernel"] == f"shared host kernel {platform.release()}"
    assert "host syscalls allowed" in container["isolation"]["syscall_surface"]
    assert "pid" in container["isolation"]["namespaces"]
    assert vm["isolation"]["kernel"].startswith("own guest kernel")
    assert vm["shared_disk_bytes"] > 0 and container["shared_disk_bytes"] == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli("ps", "-a", "-q").stdout.split() == []  # every run was removed


def test_compare_table_states_both(cli: Cli) -> None:
    require_vm(cli)
    done = cli("compare", "busybox", "-n", "1", "--warmup", "0", "--", "echo", "hi", timeout=180)
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[1]
    assert "CONTAINER" in header and "VM" in header
    for row in ("start to first output", "host memory, peak PSS", "disk added per workload", "syscall surface"):
        assert row in done.stdout
    assert "the container started (to first output)" in done.stdout
    # Progress on stderr: which run of which kind, numbered.
    assert done.stderr.splitlines() == ["[1/2] container: run 1 of 1", "[2/2] vm: run 1 of 1"]
    # The same comparison again names the same host process for each kind (chosen by role, not by chance).
    again = cli("compare", "busybox", "-n", "1", "--warmup", "0", "--", "echo", "hi", timeout=180)
    rows = [next(line for line in out.splitlines() if line.startswith("host process"))
            for out in (done.stdout, again.stdout)]
    assert rows[0] == rows[1], rows
    assert "conmon: " in rows[0] and "qemu-system" in rows[0]


def test_policy_sends_a_workload_to_its_own_kernel(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_vm(cli)
    policy = tmp_path / "policy.toml"
    policy.write_text('default = "container"\n[[rule]]\nname = "root-in-vm"\naction = "vm"\nruns_as_root = true\n')
    monkeypatch.setenv("ISOBOX_POLICY", str(policy))
    in_vm = cli("run", "--rm", "busybox", "uname", "-r", timeout=120, check=True).stdout.strip()
    assert in_vm and in_vm != platform.release()
    as_user = cli("run", "--rm", "--user", "65534", "busybox", "uname", "-r", check=True).stdout.strip()
    assert as_user == platform.release()  # not root: the default, a container on the host kernel
