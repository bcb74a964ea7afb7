"""JSON copies of records next to the database, one file per record, for `isobox system check`.

The database is the truth; a copy only lets the records be rebuilt if the database is lost or damaged.
Writing one never fails the operation that changed the record (a full disk must not stop a removal).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TypeVar

from isobox.state import codec

log = logging.getLogger(__name__)
T = TypeVar("T")


class JsonMirror:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, key: str, record: object) -> None:
        target = self.directory / f"{key}.json"
        tmp = self.directory / f".{key}.tmp"
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp.write_text(codec.dumps(record))
            os.replace(tmp, target)
        except OSError as exc:
            log.debug("no JSON copy of %s: %s", key, exc)
            tmp.unlink(missing_ok=True)

    def remove(self, key: str) -> None:
        (self.directory / f"{key}.json").unlink(missing_ok=True)

    def load_all(self, cls: type[T]) -> list[T]:
        """Every readable copy; damaged ones are skipped with a warning."""
        found, damaged = self.scan(cls)
        for path, reason in damaged:
            log.warning("skipping damaged record copy %s: %s", path, reason)
        return found

    def scan(self, cls: type[T]) -> tuple[list[T], list[tuple[Path, str]]]:
        """(the readable copies, the damaged ones with what is wrong with each)."""
        found: list[T] = []
        damaged: list[tuple[Path, str]] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                found.append(codec.loads(cls, path.read_text()))
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                damaged.append((path, f"{type(exc).__name__}: {exc}"))
        return found, damaged
