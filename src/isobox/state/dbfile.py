"""The database file itself, for `isobox system check`: whether it is sound (opened read-only, so a damaged
file is not touched further), and moving a damaged one aside with its WAL."""

from __future__ import annotations

import enum
import os
import sqlite3
from pathlib import Path

from isobox.state.db import SCHEMA_VERSION


class Verdict(enum.StrEnum):
    SOUND = "sound"
    MISSING = "missing"
    EMPTY = "empty"
    DAMAGED = "damaged"
    NEWER = "newer"  # written by a newer isobox: left alone


def examine(path: Path) -> tuple[Verdict, str]:
    """Whether the database file is sound, and if not what is wrong (`isobox system check`). Opened
    read-only, so a damaged file is not touched."""
    try:
        if path.stat().st_size == 0:
            return Verdict.EMPTY, "the file is empty"
    except FileNotFoundError:
        return Verdict.MISSING, "the file is missing"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        return Verdict.DAMAGED, f"it cannot be opened ({exc})"
    try:
        verdict = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            return Verdict.DAMAGED, "PRAGMA integrity_check: " + "; ".join(verdict[:3])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            return Verdict.NEWER, f"schema {version} (this isobox knows {SCHEMA_VERSION}): upgrade isobox"
        tables = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {"workloads", "images", "volumes", "networks"} - tables
        if missing:
            return Verdict.DAMAGED, f"tables {', '.join(sorted(missing))} are missing"
    except sqlite3.Error as exc:
        return Verdict.DAMAGED, str(exc)
    finally:
        conn.close()
    return Verdict.SOUND, f"integrity ok, schema {version}"


def move_aside(path: Path, stamp: str) -> Path:
    """Rename a damaged database (with its WAL and shared-memory files) to state.db.damaged-STAMP; returns
    the new name of the main file."""
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, target.with_name(target.name + suffix))
    return target
