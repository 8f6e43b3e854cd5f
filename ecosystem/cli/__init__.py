"""The ``ecosystem`` command: ``run`` a scenario, ``validate`` scenario files.

One module of this package per subcommand (:data:`COMMANDS`); each has ``register(sub)``,
which adds its subparser and sets ``handler`` (a function of the parsed arguments
returning the exit status). User errors (bad files, bad options) print one line
``error: ...`` on stderr and exit with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ecosystem.cli import analyze, optimize, report, reproduce, run, sweep, validate, viz
from ecosystem.errors import EcosystemError, UsageError
from ecosystem.formats.scenario import ALLOW_OUTSIDE

COMMANDS = (run, validate, analyze, optimize, reproduce, sweep, report, viz)
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


@contextmanager
def _outside_paths(allow: bool) -> Iterator[None]:
    """With ``allow``, let scenarios name files outside their folder (an environment variable,
    so that sweep workers in other processes see it too); restored afterwards."""
    if not allow:
        yield
        return
    before = os.environ.get(ALLOW_OUTSIDE)
    os.environ[ALLOW_OUTSIDE] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALLOW_OUTSIDE, None)
        else:
            os.environ[ALLOW_OUTSIDE] = before


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ecosystem`` command; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        with _outside_paths(getattr(args, "allow_outside_paths", False)):
            return args.handler(args)
    except EcosystemError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader of stdout went away (``ecosystem run ring | head``): stop quietly; point
        # stdout at /dev/null so the interpreter's last flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
