"""The shared log format: writing, rotation, parsing, and the --since/--tail selection."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from isobox.drivers.logfile import LogWriter, format_entry, parse_line, read_entries
from isobox.model.logs import parse_timestamp
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


def test_rotation_keeps_previous_file(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "log", max_bytes=200)
    for i in range(20):
        writer.write("stdout", f"line {i}\n".encode())
    writer.close()
    assert (tmp_path / "log.1").exists()
    contents = [e.content for e in read_entries(tmp_path / "log")]
    assert contents[-1] == b"line 19" and contents == sorted(contents, key=lambda c: int(c.split()[1]))


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
