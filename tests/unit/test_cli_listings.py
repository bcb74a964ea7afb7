"""isobox's listings rendered from its records, as for an 80-column terminal: ps, network ls, volume ls, stats,
top, system df and history, compared with golden files written by hand from Docker's output for the same rows.
Cells are whole: a line wider than the terminal wraps there, as Docker's do."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from isobox.cli import output, rows
from isobox.cli.tables import display_width, render_listing
from isobox.model.mounts import MountKind, MountPlan
from isobox.model.network import InterfacePlan, NetworkMode, NetworkPlan, PortPlan
from isobox.model.plan import Process, RunPlan
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind
from isobox.model.status import Status
from isobox.service.images import HistoryEntry
from isobox.service.system import UsageSummary

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden"
NOW = 1_700_000_000.0
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def _interface(network: str = "isobox") -> InterfacePlan:
    return InterfacePlan(network, "n" * 64, "isobox0", "iv123", "eth0", "02:00:00:00:00:01", "10.199.0.5", 24,
                         "10.199.0.1")


def record(name: str, argv: tuple[str, ...], status: Status, *, kind: Kind = Kind.CONTAINER, age_s: float,
           up_s: float | None = None, exit_code: int | None = None, ports: tuple[PortPlan, ...] = (),
           image: str = "busybox", labels: tuple[tuple[str, str], ...] = (),
           mounts: tuple[MountPlan, ...] = ()) -> WorkloadRecord:
    ident = (name.encode().hex() * 16)[:64]
    network = NetworkPlan(NetworkMode.BRIDGE, None, (_interface(),), ports)
    plan = RunPlan(id=ident, name=name, kind=kind, image=image, image_id="sha256:" + "1" * 64,
                   process=Process(argv, ()), hostname=name, layers=(), workload_dir=f"/w/{ident}",
                   labels=labels, network=network, mounts=mounts)
    started = NOW - up_s if up_s is not None else (NOW - age_s + 1 if status is Status.EXITED else None)
    finished = NOW - 2 * HOUR if status is Status.EXITED else None
    return WorkloadRecord(id=ident, name=name, kind=kind, status=status, plan=plan, created_at=NOW - age_s,
                          started_at=started, finished_at=finished, exit_code=exit_code)


def workloads() -> list[WorkloadRecord]:
    web_port = PortPlan(8080, 80, "10.199.0.5")
    return [
        record("web", ("nginx", "-g", "daemon off;"), Status.RUNNING, age_s=2 * HOUR, up_s=2 * HOUR,
               ports=(web_port,), image="nginx:1.25", labels=(("role", "front"),),
               mounts=(MountPlan(MountKind.VOLUME, "/data", "/v/data", volume="website-content-v2"),)),
        record("job", ("sh", "-c", "exit 3"), Status.EXITED, age_s=3 * DAY, exit_code=3),
        record("vm1", ("sleep", "600"), Status.RUNNING, kind=Kind.VM, age_s=90, up_s=61),
        record("fresh", ("true",), Status.CREATED, age_s=0.2),
    ]


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    assert text == path.read_text(), f"{name} differs:\n{text}"


def test_ps_golden() -> None:
    found = [rows.container_row(r, now_s=NOW, exposed=("443/tcp",) if r.name == "web" else ()) for r in workloads()]
    text = render_listing("", found, default_table=rows.PS_DEFAULT, headers=rows.PS_HEADERS)
    _check_golden("ps_isobox.txt", text)
    assert max(display_width(line) for line in text.splitlines()) > 80  # nothing cut to fit 80 columns
    for cell in ("Up 2 hours", "Exited (3) 2 hours ago", "Up About a minute", "Created",
                 "443/tcp, 0.0.0.0:8080->80/tcp", '"nginx -g daemon off;"'):
        assert cell in text
    assert "1 minutes" not in text


def test_ps_fields_for_templates() -> None:
    web = rows.container_row(workloads()[0], now_s=NOW, no_trunc=True)
    assert workloads()[0].id == web.ID and web.Command == '"nginx -g daemon off;"'  # argv joined, as Docker's
    assert (web.Label("role"), web.Labels, web.Networks, web.LocalVolumes) == ("front", "role=front", "isobox", "1")
    assert rows.container_row(workloads()[0], now_s=NOW).Mounts == "website-conten…"  # Docker cuts at 15
    line = render_listing("{{.Names}}|{{.Kind}}|{{.State}}|{{.RunningFor}}", [web], default_table=rows.PS_DEFAULT,
                          headers=rows.PS_HEADERS)
    assert line == "web|container|running|2 hours ago\n"
    header = render_listing("table {{.ID}}\t{{.Kind}}\t{{.Label \"role\"}}", [web], default_table="",
                            headers=rows.PS_HEADERS).splitlines()[0]
    assert header.split() == ["CONTAINER", "ID", "KIND", "role"]


def test_json_format_has_docker_fields_only() -> None:
    import json

    line = render_listing("json", [rows.container_row(workloads()[1], now_s=NOW)], default_table="", headers={})
    document = json.loads(line)
    assert sorted(document) == sorted(rows.PS_HEADERS)  # the private label map stays out
    assert document["Status"] == "Exited (3) 2 hours ago"


def test_network_and_volume_listings_golden() -> None:
    networks = [
        rows.NetworkRow(ID="0558a7854220", Name="isobox", Driver="bridge", Scope="local", Subnet="10.199.2.0/24",
                        Gateway="10.199.2.1", Bridge="isobox0", IPv6="false", Internal="false", CreatedAt="",
                        Labels=""),
        rows.NetworkRow(ID="9f8e7d6c5b4a", Name="backend-services-with-a-long-name", Driver="bridge",
                        Scope="local", Subnet="10.89.7.0/24", Gateway="10.89.7.1", Bridge="isobox3", IPv6="false",
                        Internal="false", CreatedAt="", Labels=""),
    ]
    volumes = [rows.VolumeRow(Name="data", Driver="local", Scope="local", Type="dir", Mountpoint="/v/data",
                              Size="N/A", Labels="", CreatedAt=""),
               rows.VolumeRow(Name="3f2a9c0d1e4b5a6978f0e1d2c3b4a5968778695a4b3c2d1e0f9e8d7c6b5a4932", Driver="local",
                              Scope="local", Type="disk", Mountpoint="/v/x.img", Size="1.07GB", Labels="",
                              CreatedAt="")]
    text = render_listing("", networks, default_table=rows.NETWORKS_DEFAULT, headers=rows.NETWORK_HEADERS)
    text += render_listing("", volumes, default_table=rows.VOLUMES_DEFAULT, headers=rows.VOLUME_HEADERS)
    _check_golden("network_volume_ls.txt", text)


def test_stats_golden() -> None:
    stats = [
        rows.StatsRow(Container="web", ID="6bf80924a1b2", Name="web", Kind="container", CPUPerc=rows.percent(0.5),
                      MemUsage=rows.memory_cell(21 * 2**20, 64 * 2**20), MemPerc=rows.percent(32.8125),
                      NetIO=rows.io_pair(2900, 1174), BlockIO=rows.io_pair(4096, 12_345_678), PIDs="3"),
        rows.StatsRow(Container="vm1", ID="aaaabbbbcccc", Name="vm1", Kind="vm", CPUPerc=rows.percent(103.25),
                      MemUsage=rows.memory_cell(300 * 2**20, 256 * 2**20), MemPerc=rows.percent(117.19),
                      NetIO=rows.io_pair(0, 0), BlockIO=rows.io_pair(1_500_000, 0), PIDs="2"),
    ]
    text = render_listing("", stats, default_table=rows.STATS_DEFAULT, headers=rows.STATS_HEADERS)
    _check_golden("stats.txt", text)
    assert "21MiB / 64MiB" in text and "2.9kB / 1.17kB" in text and "103.25%" in text


def test_top_golden_uses_docker_minimum_width_of_20() -> None:
    titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    lines = [["root", "17096", "17084", "0", "16:11", "?", "00:00:00", "sleep 300"],
             ["65534", "2345678", "17096", "12", "16:12", "pts/0", "00:01:02", "sh -c while true; do :; done"]]
    text = output.table_text(titles, lines, min_width=20)
    _check_golden("top.txt", text)
    assert "2345678" in text  # the whole pid, never "2…"


def test_system_df_golden_has_reclaimable() -> None:
    found = rows.df_rows([UsageSummary("Images", 3, 1, 200_000_000, 150_000_000),
                          UsageSummary("Containers", 4, 1, 120_000, 61_440),
                          UsageSummary("Local Volumes", 2, 2, 10_000, 0), UsageSummary("Cache", 0, 0, 0, 0)])
    text = render_listing("", found, default_table=rows.DF_DEFAULT, headers=rows.DF_HEADERS)
    _check_golden("system_df.txt", text)
    assert "150MB (75%)" in text


def test_history_rows() -> None:
    steps = [HistoryEntry("2023-11-14T20:13:20Z", "isobox commit web", "add version", False, 2048),
             HistoryEntry("2023-11-01T00:00:00Z", "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / ",
                          "", False, 4_261_888)]
    found = rows.history_rows("sha256:" + "ab" * 32, steps, now_s=NOW)
    assert [r.ID for r in found] == ["abababababab", "<missing>"]
    assert found[1].CreatedBy == "/bin/sh -c #(nop) ADD file:0123456789abcdef0…"  # 45 columns
    assert found[1].CreatedSince == "13 days ago" and found[0].Size == "2.05kB"
    whole = rows.history_rows("sha256:" + "ab" * 32, steps, now_s=NOW, no_trunc=True, human=False)
    assert whole[1].CreatedBy.endswith("in /") and whole[1].Size == "4261888"


def test_port_summaries_list_exposed_and_published() -> None:
    web = workloads()[0]
    assert rows.ports_column_of(web, ("80/tcp", "443/tcp")) == "443/tcp, 0.0.0.0:8080->80/tcp"
    bare = replace(web, plan=replace(web.plan, network=None))
    assert rows.ports_column_of(bare, ()) == ""
