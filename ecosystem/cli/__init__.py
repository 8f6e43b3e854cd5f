"""The ``ecosystem`` command: ``run`` a scenario, ``validate`` scenario files.

One module of this package per subcommand (:data:`COMMANDS`); each has ``register(sub)``,
which adds its subparser and sets ``handler`` (a function of the parsed arguments
returning the exit status). User errors (bad files, bad options) print one line
``error: ...`` on stderr and exit with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import sys

from ecosystem.cli import analyze, report, reproduce, run, sweep, validate, viz
from ecosystem.errors import EcosystemError, UsageError

COMMANDS = (run, validate, analyze, reproduce, sweep, report, viz)
"""The subcommand modules, in the order ``ecosystem --help`` lists them."""


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ecosystem", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (status 2 comes from :func:`main`)."""

    def error(self, message: str):
        raise UsageError(message)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ecosystem`` command; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        return args.handler(args)
    except EcosystemError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
