"""`system df` counts what isobox stores; `system prune` gives it back."""

from __future__ import annotations

import json

import pytest
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


def test_df_and_prune(cli: Cli) -> None:
    cli(
        "run", "--name", "done", "-v", "/anon", "busybox", "sh", "-c", "head -c 300000 /dev/urandom > /blob", check=True
    )
    cli("run", "-d", "--name", "live", "busybox", "sleep", "60", check=True)
    usage = {u["kind"].split()[0]: u for u in json.loads(cli("system", "df", "--json").stdout)}
    assert usage["workloads"]["count"] == 2 and usage["workloads"]["size_bytes"] >= 300_000
    assert usage["images"]["count"] == 1 and usage["volumes"]["count"] == 1
    report = cli("system", "prune", "-f", check=True).stdout
    assert "Removed 1 workloads" in report and "Deleted Workloads:\ndone\n" in report
    names = [w["name"] for w in json.loads(cli("ps", "-a", "--json").stdout)]
    assert names == ["live"]
    assert json.loads(cli("volume", "ls", "--json").stdout) == []  # the exited one's anonymous volume went too


def test_df_counts_what_a_disk_volume_holds_not_its_capacity(cli: Cli) -> None:
    cli("volume", "create", "--opt", "type=disk", "--opt", "size=1g", "big", check=True)
    usage = {u["kind"].split()[0]: u for u in json.loads(cli("system", "df", "--json").stdout)}
    # A sparse 1 GiB image: the ext4 metadata mkfs wrote, far less than its size, but not nothing.
    assert usage["volumes"]["count"] == 1 and 0 < usage["volumes"]["size_bytes"] < 64 * 1024**2
