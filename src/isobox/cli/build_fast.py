"""A fast path for `isobox build`: its flags read with argparse instead of typer (whose import and per-call
validators cost more than a rebuild from the cache itself), then the same code as the typer command
(cli/build_command.py). Anything unusual (help, an unknown flag, a missing value) returns None and the
typer command reads the command line instead, with its full messages. A unit test checks that both know
the same flags.
"""

from __future__ import annotations

import argparse
import os
import typing

from isobox.cli.build_command import BuildFlags, run_build

VERB = "build"
_HELP = frozenset({"-h", "--help"})

# name → (flags, kind): "bool" (store_true), "list" (repeatable), "str"
OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "tag": (("--tag", "-t"), "list"),
    "file": (("--file", "-f"), "str"),
    "build_arg": (("--build-arg",), "list"),
    "target": (("--target",), "str"),
    "no_cache": (("--no-cache",), "bool"),
    "pull": (("--pull",), "bool"),
    "label": (("--label",), "list"),
    "platform": (("--platform",), "str"),
    "quiet": (("--quiet", "-q"), "bool"),
    "iidfile": (("--iidfile",), "str"),
    "network": (("--network",), "str"),
    "secret": (("--secret",), "list"),
    "progress": (("--progress",), "str"),
    "vm": (("--vm",), "bool"),
}


class _Unsure(Exception):
    """argparse would print an error: let typer read the command line instead."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise _Unsure(message)


def parser() -> argparse.ArgumentParser:
    parsed = _Parser(prog="isobox build", add_help=False, allow_abbrev=False)
    defaults = BuildFlags(path="")
    for name, (names, kind) in OPTIONS.items():
        if kind == "bool":
            parsed.add_argument(*names, dest=name, action="store_true", default=False)
        elif kind == "list":
            parsed.add_argument(*names, dest=name, action="append", default=[])
        else:
            parsed.add_argument(*names, dest=name, default=getattr(defaults, name))
    parsed.add_argument("path")
    return parsed


def split_globals(argv: list[str]) -> tuple[str | None, bool, list[str]] | None:
    """(--root value, --debug, the rest from the verb on), or None for anything else before the verb (the
    global options of cli/app.py; cli/fast.py reads them alike for run, whose module this one does not load)."""
    root: str | None = None
    debug = False
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        head = rest.pop(0)
        if head == "--root" and rest:
            root = rest.pop(0)
        elif head.startswith("--root="):
            root = head.split("=", 1)[1]
        elif head == "--debug":
            debug = True
        else:
            return None
    return root, debug, rest


def try_build(argv: list[str]) -> int | None:
    """The exit code of a build handled here, or None to let typer handle argv."""
    split = split_globals(argv)
    if split is None:
        return None
    root, debug, rest = split
    if not rest or rest[0] != VERB or any(arg in _HELP or arg == "--" for arg in rest[1:]):
        return None
    try:
        values = parser().parse_args(rest[1:])
    except _Unsure:
        return None
    if root:
        os.environ["ISOBOX_ROOT"] = root
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    return run_build(BuildFlags(**vars(values)))
