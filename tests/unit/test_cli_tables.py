"""Docker's listings: --format keywords, header rows, the column writer, and the words in the cells.

Expected texts are what docker/cli prints for the same rows (formatter.Context.Write, its tabwriter with
minwidth 10 and padding 3) and what docker/go-units returns (HumanSize, BytesSize, HumanDuration); the
golden tables under tests/fixtures/golden are a ps -a and an images listing, checked line by line by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from isobox.cli.tables import (
    PortSummary,
    binary_size,
    display_width,
    ellipsis,
    human_duration,
    human_size,
    ports_column,
    quoted_command,
    render_listing,
    short_id,
    status_text,
    tabwrite,
    time_ago,
)
from isobox.errors import InvalidArgumentError
from isobox.model.status import Status

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden"
NOW = 1_700_000_000.0
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@dataclass(frozen=True)
class ContainerRow:
    """What a ps row offers to templates, named as Docker's ContainerContext names it."""

    ID: str
    Image: str
    Command: str
    RunningFor: str
    Status: str
    Ports: str
    Names: str
    labels: dict[str, str] = field(default_factory=dict)

    def Label(self, name: str) -> str:
        return self.labels.get(name, "")


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED",
              "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "Labels": "LABELS"}  # fmt: skip
PS_DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def ps_rows() -> list[ContainerRow]:
    """Five workloads in the states ps -a shows, their cells written by the helpers the CLI will use."""
    web_ports = [PortSummary(80, "tcp", "0.0.0.0", 8080), PortSummary(80, "tcp", "::", 8080), PortSummary(443)]
    return [
        ContainerRow(short_id("sha256:6bf80924a1b2c3d4e5f6a7b8c9d0"), "nginx:1.25",
                     quoted_command("/docker-entrypoint.sh nginx -g 'daemon off;'"), time_ago(NOW - 2 * HOUR, NOW),
                     status_text(Status.RUNNING, started_at_s=NOW - 2 * HOUR, finished_at_s=None, exit_code=None,
                                 now_s=NOW), ports_column(web_ports), "web", {"com.example.tier": "front"}),
        ContainerRow(short_id("0123456789abcdef0123"), "busybox", quoted_command("sh -c 'exit 3'"),
                     time_ago(NOW - 3 * DAY, NOW),
                     status_text(Status.EXITED, started_at_s=NOW - 3 * DAY, finished_at_s=NOW - 2 * DAY, exit_code=3,
                                 now_s=NOW), "", "lo"),
        ContainerRow(short_id("fedcba9876543210"), "registry.example.com:5000/team/database-migrations:2024.06.1",
                     quoted_command("migrate --all"), time_ago(NOW - 90, NOW),
                     status_text(Status.CREATED, started_at_s=None, finished_at_s=None, exit_code=None, now_s=NOW),
                     "", "db-migrate-once"),
        ContainerRow(short_id("aaaabbbbccccdddd"), "alpine:3.19", quoted_command("top"),
                     time_ago(NOW - 5 * MINUTE, NOW),
                     status_text(Status.PAUSED, started_at_s=NOW - 5 * MINUTE, finished_at_s=None, exit_code=None,
                                 now_s=NOW), "", "paused_top"),
        ContainerRow(short_id("1111222233334444"), "coredns:1.11", quoted_command("/coredns"),
                     time_ago(NOW - 0.4, NOW),
                     status_text(Status.RUNNING, started_at_s=NOW - 0.2, finished_at_s=None, exit_code=None,
                                 now_s=NOW), ports_column([PortSummary(53, "udp"), PortSummary(53, "tcp"),
                                                           PortSummary(9153)]), "dns"),
    ]  # fmt: skip


# -- the --format keywords -------------------------------------------------------------------------------------


def test_default_table_for_empty_and_table_keyword() -> None:
    default = render_listing("", ps_rows(), default_table=PS_DEFAULT, headers=PS_HEADERS)
    assert render_listing("table", ps_rows(), default_table=PS_DEFAULT, headers=PS_HEADERS) == default
    assert default.splitlines()[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS",
                                               "NAMES"]  # fmt: skip


def test_table_template_derives_its_header_from_the_field_titles() -> None:
    out = render_listing("table {{.ID}}\\t{{.Names}}\\t{{.Status}}", ps_rows()[:2], default_table=PS_DEFAULT,
                         headers=PS_HEADERS)  # fmt: skip
    # NAMES is padded to 10 columns: tabwriter's minimum width, as in `docker ps --format 'table …'`.
    assert out == (
        "CONTAINER ID   NAMES     STATUS\n"
        "6bf80924a1b2   web       Up 2 hours\n"
        "0123456789ab   lo        Exited (3) 2 days ago\n"
    )


def test_empty_listing_still_has_its_header() -> None:
    assert render_listing("table", [], default_table=PS_DEFAULT, headers=PS_HEADERS) == (
        "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
    )
    assert render_listing("{{.ID}}", [], default_table=PS_DEFAULT, headers=PS_HEADERS) == ""


@pytest.mark.parametrize(
    ("template", "header"),
    [
        ("table {{.Names | upper}}\\t{{lower .Status}}", "NAMES     STATUS"),  # header functions keep titles whole
        ("table {{json .Names}}\\t{{truncate .ID 3}}", "NAMES     CONTAINER ID"),
        ("table {{title .Names}}\\t{{join (split .Image \":\") \"/\"}}", "NAMES     IMAGE"),
        ("table {{pad .Names 2 0}}\\t{{.Status}}", "  NAMES   STATUS"),  # pad is kept, to keep the alignment
        ('table {{.Label "com.example.tier"}}\\t{{.Names}}', "tier      NAMES"),  # a label's last part
        ("table {{.Names}}\\t{{.labels}}", "NAMES     <no value>"),  # a field without a title, as Docker prints
        ("table   {{.Names}}  ", "NAMES"),  # spaces around the template are dropped
    ],
)
def test_header_rows(template: str, header: str) -> None:
    out = render_listing(template, ps_rows()[:2], default_table=PS_DEFAULT, headers=PS_HEADERS)
    assert out.splitlines()[0].rstrip() == header


def test_json_keyword_prints_one_object_per_line() -> None:
    out = render_listing("json", ps_rows()[:2], default_table=PS_DEFAULT, headers=PS_HEADERS)
    lines = out.splitlines()
    assert len(lines) == 2 and out.endswith("\n")
    assert lines[0].startswith('{"Command":"\\"/docker-entrypoint.…\\"","ID":"6bf80924a1b2"')  # keys sorted
    assert json.loads(lines[1])["Status"] == "Exited (3) 2 days ago"


def test_other_templates_print_one_line_per_row_without_header() -> None:
    out = render_listing("{{.Names}}: {{.Status}}\\n  {{.Ports}}", ps_rows()[:2], default_table=PS_DEFAULT,
                         headers=PS_HEADERS)  # fmt: skip
    assert out == "web: Up 2 hours\n  443/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp\nlo: Exited (3) 2 days ago\n  \n"


def test_template_errors_leave_no_output() -> None:
    # Positions count from the template after "table ", as Docker parses it.
    with pytest.raises(InvalidArgumentError, match=r"template: :1:5: unexpected \"}\" in operand"):
        render_listing("table {{.ID}", ps_rows(), default_table=PS_DEFAULT, headers=PS_HEADERS)
    with pytest.raises(InvalidArgumentError, match="can't evaluate field Nope in type ContainerRow"):
        render_listing("table {{.Nope}}", ps_rows(), default_table=PS_DEFAULT, headers=PS_HEADERS)


# -- golden tables ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every table here is rendered as for an 80-column terminal: the width must change nothing."""
    monkeypatch.setenv("COLUMNS", "80")


def _check_golden(name: str, text: str, cells: list[str]) -> None:
    assert text == (GOLDEN / name).read_text()
    # Docker prints whole cells and lets an 80-column terminal wrap the line: nothing is cut to fit.
    assert max(display_width(line) for line in text.splitlines()) > 80
    for cell in cells:
        assert cell in text


def test_golden_ps_a() -> None:
    rows = ps_rows()
    text = render_listing("", rows, default_table=PS_DEFAULT, headers=PS_HEADERS)
    _check_golden("ps_a.txt", text, [c for r in rows for c in (r.ID, r.Image, r.Status, r.Ports, r.Names)])


@dataclass(frozen=True)
class ImageRow:
    Repository: str
    Tag: str
    ID: str
    CreatedSince: str
    Size: str


def test_golden_images() -> None:
    # docker/cli's default images format, with its {{if}} for images without a creation time
    default = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}"
               "\t{{.Size}}")
    headers = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED", "Size": "SIZE"}
    images = [
        ("nginx", "1.25", "sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6", 2 * 7 * DAY,
         187_654_321),
        ("busybox", "latest", "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741", 400 * DAY,
         4_261_888),
        ("registry.example.com:5000/team/database-migrations", "2024.06.1",
         "sha256:0d9e5c4a1b7f3e2d6c8a9b0f1e2d3c4b5a69788766554433221100ffeeddccbb", 50 * MINUTE, 1_234_567_890),
        ("<none>", "<none>", "sha256:77aa88bb99cc00dd11ee22ff33aa44bb55cc66dd77ee88ff99aa00bb11cc22dd", None, 999),
    ]  # fmt: skip
    rows = [
        ImageRow(repo, tag, short_id(digest), time_ago(NOW - age, NOW) if age is not None else "", human_size(size))
        for repo, tag, digest, age, size in images
    ]
    text = render_listing("", rows, default_table=default, headers=headers)
    _check_golden("images.txt", text, [c for r in rows for c in (r.Repository, r.Tag, r.ID, r.Size)] + ["N/A"])


# -- the column writer -----------------------------------------------------------------------------------------


def test_tabwrite_columns_are_runs_of_lines() -> None:
    # Go's text/tabwriter example (elastic tabstops), left-aligned, minwidth 0, padding 1: the b and d
    # columns are different columns, because the third line interrupts them.
    text = "a\tb\tc\naa\tbb\tcc\naaa\t\naaaa\tdddd\teeee\n"
    assert tabwrite(text, min_width=0, padding=1) == "a    b  c\naa   bb cc\naaa  \naaaa dddd eeee\n"


def test_tabwrite_minimum_width_padding_and_wide_characters() -> None:
    assert tabwrite("ID\tNAME\nabc\tx\n") == "ID        NAME\nabc       x\n"  # at least 10 columns
    assert tabwrite("a-very-long-cell\tx\n") == "a-very-long-cell   x\n"  # never cut, 3 spaces after
    # Wide characters take two columns (go-runewidth), so the next column still lines up.
    assert tabwrite("名前前前前前\tx\nab\ty\n") == "名前前前前前   x\nab             y\n"
    assert tabwrite("") == ""


def test_display_width() -> None:
    widths = [display_width(text) for text in ("abc", "名前", "e\u0301", "\x1b")]
    assert widths == [3, 4, 1, 0]  # wide characters 2, a combining accent and a control character 0


# -- sizes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "precision", "expected"),
    [
        # go-units TestHumanSize (HumanSize is precision 4)
        (1000, 4, "1kB"), (1024, 4, "1.024kB"), (1_000_000, 4, "1MB"), (1_048_576, 4, "1.049MB"),
        (2_000_000, 4, "2MB"), (3.42e9, 4, "3.42GB"), (5.372e12, 4, "5.372TB"), (2.22e15, 4, "2.22PB"),
        (1e28, 4, "1e+04YB"),
        # docker images, ps --size, stats I/O (precision 3)
        (0, 3, "0B"), (45, 3, "45B"), (999, 3, "999B"), (1000, 3, "1kB"), (12_345, 3, "12.3kB"),
        (1_048_576, 3, "1.05MB"), (187_654_321, 3, "188MB"), (999_500, 3, "1e+03kB"),
    ],
)  # fmt: skip
def test_human_size(size: float, precision: int, expected: str) -> None:
    assert human_size(size, precision) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [(1024, "1KiB"), (1024 * 1024, "1MiB"), (2 * 1024**2, "2MiB"), (3.42 * 1024**3, "3.42GiB"),
     (5.372 * 1024**4, "5.372TiB"), (2.22 * 1024**5, "2.22PiB"), (1024**5 * 1024**5, "1.049e+06YiB"),
     (512, "512B"), (1.5 * 1024**2, "1.5MiB")],
)  # fmt: skip
def test_binary_size(size: float, expected: str) -> None:
    assert binary_size(size) == expected  # go-units TestBytesSize, and docker stats' MEM USAGE


# -- durations and statuses ------------------------------------------------------------------------------------

WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        # go-units TestHumanDuration, every threshold
        (0.45, "Less than a second"), (1, "1 second"), (45, "45 seconds"), (59, "59 seconds"),
        (60, "About a minute"), (119, "About a minute"), (120, "2 minutes"), (35 * MINUTE + 40, "35 minutes"),
        (59 * MINUTE, "59 minutes"), (HOUR, "About an hour"), (HOUR + 29 * MINUTE, "About an hour"),
        (HOUR + 31 * MINUTE, "2 hours"), (3 * HOUR + 29 * MINUTE, "3 hours"), (3 * HOUR + 31 * MINUTE, "4 hours"),
        (DAY, "24 hours"), (DAY + 12 * HOUR, "36 hours"), (2 * DAY, "2 days"), (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"), (2 * WEEK + 4 * DAY, "2 weeks"), (MONTH, "4 weeks"), (MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"), (5 * MONTH + 2 * WEEK, "5 months"), (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"), (3 * YEAR + 2 * MONTH, "3 years"),
        (-5, "Less than a second"),  # a clock a little ahead of the record
    ],
)  # fmt: skip
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_no_unit_is_ever_counted_as_one() -> None:
    words = {human_duration(s) for s in range(0, 3 * int(YEAR), 997)}
    assert not [w for w in words if w.startswith("1 ") and w != "1 second"]


@pytest.mark.parametrize(
    ("status", "started", "finished", "code", "health", "expected"),
    [
        (Status.RUNNING, NOW - 5 * MINUTE, None, None, "", "Up 5 minutes"),
        (Status.RUNNING, NOW - 0.5, None, None, "", "Up Less than a second"),
        (Status.RUNNING, NOW - 3 * DAY, None, None, "healthy", "Up 3 days (healthy)"),
        (Status.RUNNING, NOW - 10, None, None, "starting", "Up 10 seconds (health: starting)"),
        (Status.PAUSED, NOW - 2 * HOUR, None, None, "", "Up 2 hours (Paused)"),
        (Status.EXITED, NOW - 3 * HOUR, NOW - 2 * HOUR, 0, "", "Exited (0) 2 hours ago"),
        (Status.EXITED, NOW - 3 * HOUR, NOW - 70, 137, "", "Exited (137) About a minute ago"),
        (Status.CREATED, None, None, None, "", "Created"),
        (Status.REMOVING, NOW - HOUR, NOW - 1, 0, "", "Removal In Progress"),
    ],
)
def test_status_text(status: Status, started: float | None, finished: float | None, code: int | None, health: str,
                     expected: str) -> None:  # fmt: skip
    assert status_text(status, started_at_s=started, finished_at_s=finished, exit_code=code, now_s=NOW,
                       health=health) == expected  # fmt: skip


def test_time_ago() -> None:
    assert time_ago(NOW - 75, NOW) == "About a minute ago"
    assert time_ago(NOW - 0.3, NOW) == "Less than a second ago"
    assert time_ago(NOW - 2 * DAY - 1, NOW) == "2 days ago"


# -- ports, ids, commands --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        # docker/cli TestDisplayablePorts
        ([PortSummary(9988)], "9988/tcp"),
        ([PortSummary(9988, "udp")], "9988/udp"),
        ([PortSummary(9988, "tcp", "0.0.0.0")], "0.0.0.0:0->9988/tcp"),
        ([PortSummary(9988, "tcp", "::")], "[::]:0->9988/tcp"),
        ([PortSummary(9988, "tcp", "", 8899)], "9988/tcp"),
        ([PortSummary(9988, "tcp", "4.3.2.1", 8899)], "4.3.2.1:8899->9988/tcp"),
        ([PortSummary(9988, "tcp", "4.3.2.1", 9988)], "4.3.2.1:9988->9988/tcp"),
        ([PortSummary(9988, "udp"), PortSummary(9988, "udp")], "9988/udp, 9988/udp"),
        ([PortSummary(9998, "udp", "1.2.3.4", 9998), PortSummary(9999, "udp", "1.2.3.4", 9999)],
         "1.2.3.4:9998-9999->9998-9999/udp"),
        ([PortSummary(9998, "udp", "::1", 9998), PortSummary(9999, "udp", "::1", 9999)],
         "[::1]:9998-9999->9998-9999/udp"),
        ([PortSummary(9998, "udp", "1.2.3.4", 8887), PortSummary(9999, "udp", "1.2.3.4", 8888)],
         "1.2.3.4:8887->9998/udp, 1.2.3.4:8888->9999/udp"),
        ([PortSummary(9998, "udp"), PortSummary(9999, "udp")], "9998-9999/udp"),
        ([PortSummary(6677, "tcp", "1.2.3.4", 7766), PortSummary(9988, "udp", "", 8899)],
         "9988/udp, 1.2.3.4:7766->6677/tcp"),
        ([PortSummary(9988, "udp", "1.2.3.4", 8899), PortSummary(9988, "tcp", "1.2.3.4", 8899),
          PortSummary(2233, "tcp", "4.3.2.1", 3322), PortSummary(2233, "tcp", "::1", 3322)],
         "4.3.2.1:3322->2233/tcp, [::1]:3322->2233/tcp, 1.2.3.4:8899->9988/tcp, 1.2.3.4:8899->9988/udp"),
        ([PortSummary(80), PortSummary(1024), PortSummary(80, "udp"), PortSummary(1024, "udp"),
          PortSummary(1024, "tcp", "1.1.1.1", 80), PortSummary(80, "tcp", "1.1.1.1", 1024),
          PortSummary(12345, "sctp")],
         "80/tcp, 80/udp, 1024/tcp, 1024/udp, 12345/sctp, 1.1.1.1:1024->80/tcp, 1.1.1.1:80->1024/tcp"),
        # -p 8080:80 on every address: Docker lists it on 0.0.0.0 and on ::
        ([PortSummary(80, "tcp", "::", 8080), PortSummary(80, "tcp", "0.0.0.0", 8080)],
         "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"),
        ([], ""),
    ],
)  # fmt: skip
def test_ports_column(ports: list[PortSummary], expected: str) -> None:
    assert ports_column(ports) == expected


def test_ids_and_commands() -> None:
    digest = "sha256:6bf80924a1b2c3d4e5f6"
    assert (short_id(digest), short_id(digest, no_trunc=True), short_id("abc")) == ("6bf80924a1b2", digest, "abc")
    assert quoted_command("/docker-entrypoint.sh nginx -g 'daemon off;'") == '"/docker-entrypoint.…"'
    assert quoted_command('echo "hi"', no_trunc=True) == '"echo \\"hi\\""'
    assert (ellipsis("abcdef", 4), ellipsis("abc", 3), ellipsis("名前名前", 5), ellipsis("ab", 1)) == (
        "abc…", "abc", "名前…", "a")  # fmt: skip


# -- a demonstration: isobox's own records through the engine ---------------------------------------------------


def test_demonstration_with_a_workload_record() -> None:
    """How the CLI will use the engine: inspect -f over the JSON document of a record, and a ps row made of
    the record with the cell helpers."""
    from isobox.cli.gotemplate import parse
    from isobox.model.image_config import ImageConfig
    from isobox.model.plan import resolve
    from isobox.model.record import WorkloadRecord
    from isobox.model.spec import Kind, WorkloadSpec
    from isobox.state.codec import to_jsonable

    plan = resolve(WorkloadSpec("busybox", ("sleep", "60")), ImageConfig(cmd=("sh",)), id="c0ffee" * 10 + "abcd",
                   name="nap", image_id="sha256:1", layers=("/a",), workload_dir="/w")  # fmt: skip
    record = WorkloadRecord(plan.id, "nap", Kind.CONTAINER, Status.RUNNING, plan, NOW - 3 * MINUTE,
                            started_at=NOW - 2 * MINUTE)  # fmt: skip
    document = to_jsonable(record)
    inspect_f = parse('{{.name}} {{.status}} ({{.kind}}): {{join .plan.process.argv " "}} {{json .exit_code}}')
    assert inspect_f.render(document) == "nap running (container): sleep 60 null"

    row = ContainerRow(short_id(record.id), record.plan.image, quoted_command(" ".join(record.plan.process.argv)),
                       time_ago(record.created_at, NOW),
                       status_text(record.status, started_at_s=record.started_at, finished_at_s=record.finished_at,
                                   exit_code=record.exit_code, now_s=NOW), "", record.name)  # fmt: skip
    table = render_listing("table {{.ID}}\\t{{.Status}}\\t{{.Names}}", [row], default_table=PS_DEFAULT,
                           headers=PS_HEADERS)  # fmt: skip
    assert table == "CONTAINER ID   STATUS         NAMES\nc0ffeec0ffee   Up 2 minutes   nap\n"
