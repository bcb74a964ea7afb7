"""A fast path for `isobox run` and `isobox create`, the commands whose start-up latency users feel.

Typer builds a validator per option on every call (~70 ms for run's 40 flags, plus its import); this
parser is built from the same flag table (spec_flags.RUN_OPTIONS) with argparse and then calls the same
code as the typer command (run_command.py). It handles only the plain forms; whenever it is unsure —
help, `--`, an option it does not know, a value it cannot convert — it returns None and the typer
application parses the command line instead, with its full error messages.
"""

from __future__ import annotations

import argparse
import os
import types
import typing
from typing import Any

from isobox.cli.run_command import create_workload, run_workload
from isobox.cli.spec_flags import RUN_OPTIONS, RunFlags

VERBS = ("run", "create")
_HELP = frozenset({"-h", "--help"})


class _Unsure(Exception):
    """argparse would print an error: let typer handle the command line instead."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise _Unsure(message)


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(element type, is a list) of an option's annotation such as `list[str] | None` or `float`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def _parser(verb: str) -> _Parser:
    parser = _Parser(prog=f"isobox {verb}", add_help=False, allow_abbrev=False)
    for name, (annotation, flag) in RUN_OPTIONS.items():
        kind, is_list = _base_type(annotation)
        if kind is bool:
            parser.add_argument(*flag.names, dest=name, action="store_true", default=flag.default)
        elif is_list:
            parser.add_argument(*flag.names, dest=name, action="append", type=kind, default=None)
        else:
            parser.add_argument(*flag.names, dest=name, type=kind, default=flag.default)
    if verb == "run":
        parser.add_argument("-d", "--detach", dest="detach", action="store_true", default=False)
    parser.add_argument("image")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    return parser


def _split_globals(argv: list[str]) -> tuple[str | None, bool, list[str]] | None:
    """(--root value, --debug, the rest starting at the verb), or None for anything else before it."""
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


def try_run(argv: list[str]) -> int | None:
    """The exit code of a run/create handled here, or None to let typer handle argv."""
    split = _split_globals(argv)
    if split is None:
        return None
    root, debug, rest = split
    if not rest or rest[0] not in VERBS:
        return None
    verb, args = rest[0], rest[1:]
    # Help anywhere before the image, or `--`, is typer's job.
    if "--" in args or any(arg in _HELP for arg in args[: _image_index(args)]):
        return None
    try:
        parsed = _parser(verb).parse_args(args)
    except _Unsure:
        return None
    if root:
        os.environ["ISOBOX_ROOT"] = root
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    flags = RunFlags(**{name: getattr(parsed, name) for name in RUN_OPTIONS})
    if verb == "run":
        return run_workload(parsed.image, parsed.command, parsed.detach, flags)
    return create_workload(parsed.image, parsed.command, flags)


def _image_index(args: list[str]) -> int:
    """Where the first positional argument (the image) probably is; options with values are skipped."""
    takes_value = {
        n for annotation, flag in RUN_OPTIONS.values() if _base_type(annotation)[0] is not bool for n in flag.names
    }
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-") or arg == "-":
            return index
        index += 2 if arg in takes_value else 1
    return len(args)
