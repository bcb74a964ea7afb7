"""A workload's log, entry by entry (the CRI "k8s-file" format both drivers write, drivers/logfile.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class LogEntry:
    timestamp: str
    stream: str  # "stdout" | "stderr"
    partial: bool
    content: bytes

    @property
    def time(self) -> dt.datetime:
        return parse_timestamp(self.timestamp)


def parse_timestamp(text: str) -> dt.datetime:
    # Python parses at most microseconds: cut the nanosecond fraction to 6 digits.
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return dt.datetime.fromisoformat(text)


@dataclass(frozen=True)
class LogOptions:
    """Docker's json-file options (`--log-opt max-size=SIZE --log-opt max-file=N`). Without ``max_size_bytes``
    a log keeps everything, as Docker's default; with it, the log is rotated past that size into
    output.log.1 … output.log.N-1, the oldest beyond ``max_file`` files (the current one included) deleted."""

    max_size_bytes: int | None = None
    max_file: int = 1

    @property
    def rotates(self) -> bool:
        return self.max_size_bytes is not None
