"""The engine (`isobox serve`, service/engine.py): started by the service for a workload with a health check,
running the checks from its supervisor; events from the CLI; and a detached --rm VM removed by the next
command that sees its exit when no engine runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from isobox.linux.proc import process_alive

pytestmark = pytest.mark.integration


def test_a_health_check_starts_the_engine_which_runs_it(cli: object, isobox_root: Path) -> None:
    since = str(time.time() - 1)
    created = cli("run", "-d", "--name", "checked", "--health-cmd", "test -f /tmp/ready",  # type: ignore[operator]
                  "--health-interval", "1s", "--health-retries", "2", "busybox", "sh", "-c",
                  "sleep 2; touch /tmp/ready; sleep 300", check=True)
    assert "started the isobox engine (pid" in created.stderr and "for the health check of checked" in created.stderr
    info = json.loads((isobox_root / "run" / "engine.json").read_text())
    assert process_alive(info["pid"], b"serve") and Path(info["socket"]).exists()
    again = cli("run", "-d", "--name", "second", "--health-cmd", "true", "busybox", "sleep", "300",  # type: ignore[operator]
                check=True)
    assert "started the isobox engine" not in again.stderr  # one engine per root
    deadline = time.monotonic() + 40
    status = None
    while time.monotonic() < deadline and status != "healthy":
        document = json.loads(cli("inspect", "checked", check=True).stdout)[0]  # type: ignore[operator]
        health = document["State"].get("Health") or {}
        status = health.get("Status")
        time.sleep(0.5)
    assert status == "healthy"  # State.Health in the CLI's inspect too (Docker's shape)
    assert health["Log"][-1]["ExitCode"] == 0 and health["FailingStreak"] == 0
    shown = cli("events", "--since", since, "--until", str(time.time() + 1), "--filter", "container=checked",  # type: ignore[operator]
                "--format", "json", check=True).stdout.splitlines()
    actions = [json.loads(line)["Action"] for line in shown]
    assert actions[:2] == ["create", "start"] and "health_status: healthy" in actions
    cli("rm", "-f", "checked", "second", check=True)  # type: ignore[operator]


@pytest.mark.vm
def test_a_detached_vm_with_rm_is_removed_without_an_engine(cli: object, isobox_root: Path) -> None:
    cli("run", "-d", "--rm", "--vm", "--network", "none", "--name", "brief", "busybox", "true",  # type: ignore[operator]
        check=True, timeout=180)
    assert not (isobox_root / "run" / "engine.json").exists()
    deadline = time.monotonic() + 90
    names = ["brief"]
    while time.monotonic() < deadline and "brief" in names:
        time.sleep(1)
        names = cli("ps", "-a", "--format", "{{.Names}}").stdout.split()  # type: ignore[operator]
    assert "brief" not in names
