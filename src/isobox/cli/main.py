"""Entry point of the `isobox` command.

`isobox run` and `isobox create` first go through a fast path (cli/fast.py) that parses the same flag
table without importing typer; anything it does not handle (help, other verbs, unusual syntax) goes to
the typer application in cli/app.py.
"""

from __future__ import annotations

import sys

from isobox.cli import output
from isobox.errors import IsoboxError


def main() -> None:
    argv = sys.argv[1:]
    try:
        from isobox.cli import fast

        code = fast.try_run(argv)
        if code is None:
            from isobox.cli.app import run_app

            run_app(argv)
            return
    except IsoboxError as exc:
        output.fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)


if __name__ == "__main__":
    main()
