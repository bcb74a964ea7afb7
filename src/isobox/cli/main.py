"""Entry point of the `isobox` command.

`isobox run` and `isobox create` first go through a fast path (cli/fast.py) that parses the same flag
table without importing typer; anything it does not handle (help, other verbs, unusual syntax) goes to
the typer application in cli/app.py.
"""

from __future__ import annotations

import errno
import os
import sys

from isobox.cli import output
from isobox.errors import CommandError, IsoboxError


def main() -> None:
    argv = sys.argv[1:]
    try:
        from isobox.service import engine  # the service starts the engine for some workloads; the CLI says so

        engine.announce_with(lambda line: print(line, file=sys.stderr))
        code = None
        if "build" in argv:  # `isobox build` has a fast path of its own, without run's flag table
            from isobox.cli.build_fast import try_build

            code = try_build(argv)
        if code is None:
            from isobox.cli import fast

            code = fast.try_run(argv)
        if code is None:
            from isobox.cli.app import run_app

            run_app(argv)
            return
    except CommandError as exc:  # Docker's codes: 127 not found, 126 not executable
        output.fail(str(exc), exc.exit_code)
    except IsoboxError as exc:
        output.fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:  # a failure no layer translated: still a message, never a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            output.fail(f"the file system is full{where}: free space there, e.g. `isobox system prune`")
        output.fail(f"{exc.strerror or exc}{where}")
    # The fast path is done and its records are committed (SQLite WAL: in the OS's hands once COMMIT
    # returns): skip the interpreter's teardown and the database's close-time checkpoint, which cost
    # 6-13 ms of every `run`. Only the standard streams hold unwritten data.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a closed pipe (`isobox run … | head`): nothing more to deliver
            pass
    os._exit(code or 0)


if __name__ == "__main__":
    main()
