"""The shared log format: writing, rotation, parsing, and the --since/--tail selection."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from isobox.drivers.logfile import LogWriter, format_entry, needs_rotation, parse_line, read_entries, rotate, rotated
from isobox.model.logs import LogOptions, parse_timestamp
from isobox.service.logs import parse_since, select


def test_roundtrip_and_partial_lines(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "log")
    writer.write("stdout", b"one\ntw")
    writer.write("stderr", b"err\n")
    writer.write("stdout", b"o\nthree")
    writer.close()
    entries = list(read_entries(tmp_path / "log"))
    assert [(e.stream, e.content, e.partial) for e in entries] == [
        ("stdout", b"one", False),
        ("stderr", b"err", False),
        ("stdout", b"two", False),
        ("stdout", b"three", True),
    ]


def test_no_rotation_by_default(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "log")
    for i in range(2000):
        writer.write("stdout", f"line {i}\n".encode())
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]
    assert len(list(read_entries(tmp_path / "log"))) == 2000


def test_rotation_keeps_max_file_files_and_every_line_in_order(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "log", LogOptions(max_size_bytes=300, max_file=4))
    for i in range(200):
        writer.write("stdout", f"line {i}\n".encode())
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "log.1", "log.2", "log.3"]
    contents = [int(e.content.split()[1]) for e in read_entries(tmp_path / "log")]
    assert contents[-1] == 199 and contents == list(range(contents[0], 200))  # the newest, without a gap
    assert all((tmp_path / name).stat().st_size < 300 + 80 for name in ("log.1", "log.2", "log.3"))


def test_rotate_renames_before_reopen_and_drops_beyond_max_file_after(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    for name, text in (("output.log", "new"), ("output.log.1", "mid"), ("output.log.2", "old")):
        (tmp_path / name).write_text(text)
    seen: list[list[str]] = []

    def reopen() -> None:  # the writer's view at that moment: the old files are all still there
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        path.write_text("")

    dropped = rotate(path, LogOptions(max_size_bytes=1, max_file=3), reopen)
    assert seen == [["output.log.1", "output.log.2", "output.log.3"]]
    assert [p.name for p in dropped] == ["output.log.3"]
    assert [(tmp_path / n).read_text() for n in ("output.log.1", "output.log.2")] == ["new", "mid"]
    assert rotated(path) == [tmp_path / "output.log.1", tmp_path / "output.log.2"]
    (tmp_path / "output.log.x").write_text("")  # not a rotated file of this log
    (tmp_path / "output.log.01").write_text("")
    assert len(rotated(path)) == 2


def test_needs_rotation(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert not needs_rotation(path, LogOptions(max_size_bytes=10))
    path.write_bytes(b"x" * 10)
    assert needs_rotation(path, LogOptions(max_size_bytes=10)) and not needs_rotation(path, LogOptions())


def test_conmon_lines_parse_with_nanoseconds() -> None:
    entry = parse_line(b"2026-11-27T03:29:46.521809284+00:00 stdout F out\n")
    assert entry is not None and entry.content == b"out" and entry.time.microsecond == 521809
    assert parse_line(format_entry("stderr", b"x", partial=True)) is not None
    assert parse_timestamp("2026-01-01T00:00:00+00:00").year == 2026


def test_since_and_tail() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_since("10m", now) == now - dt.timedelta(minutes=10)
    assert parse_since("2026-01-01T11:00:00Z", now).hour == 11
    lines = [
        parse_line(format_entry("stdout", str(i).encode(), timestamp=f"2026-01-01T11:5{i}:00.000000000+00:00"))
        for i in range(5)
    ]
    entries = [e for e in lines if e is not None]
    picked = list(select(iter(entries), since=parse_since("7m", now), tail=None))
    assert [e.content for e in picked] == [b"3", b"4"]
    assert [e.content for e in select(iter(entries), since=None, tail=2)] == [b"3", b"4"]
    assert list(select(iter(entries), since=None, tail=0)) == []


def test_carriage_returns_are_content(tmp_path: Path) -> None:
    """A terminal's CRLF and a progress bar's lone CR stay in the entry, in one line each."""
    path = tmp_path / "log"
    writer = LogWriter(path)
    writer.write("stdout", b"boot ok\r\n10%\r50%\r100%\n")
    writer.close()
    assert [e.content for e in read_entries(path)] == [b"boot ok\r", b"10%\r50%\r100%"]
