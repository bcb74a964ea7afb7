"""When to ask the registry for an image a workload or a command names (Docker's ``--pull``)."""

from __future__ import annotations

import enum


class PullPolicy(enum.StrEnum):
    MISSING = "missing"  # use the store's image if it has one (a digest reference: one pulled by that digest)
    ALWAYS = "always"    # ask the registry every time (a tag may have moved)
    NEVER = "never"      # only the store: an image it lacks is an error
