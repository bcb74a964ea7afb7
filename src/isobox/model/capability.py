"""What a workload's driver can do beyond the common lifecycle: asked before an operation, so a missing
capability is a typed refusal (UnsupportedError) with the reason, never a crash half-way."""

from __future__ import annotations

import enum


class Capability(enum.StrEnum):
    EXEC = "exec"  # a further process in the running workload
    EXEC_TTY = "exec -t"  # … with a terminal
    EXEC_STDIN = "exec -i"  # … reading the caller's stdin
    PROCESS_SNAPSHOT = "process snapshot"  # a running workload's processes or memory saved with its files
    CLONE = "snapshot clone"  # a new workload started from another's snapshot
    COMMIT = "commit"  # its changes as a new image layer
    CONSOLE = "console"  # a serial console (firmware-booted VMs)
    GUEST_PROCESSES = "top"  # a list of the workload's processes
    COPY = "copy"  # files in and out of the workload (docker cp), as tar streams
