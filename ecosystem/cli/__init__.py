"""The ``ecosystem`` command: every subcommand of :data:`COMMANDS` (``run``, ``validate``, ...).

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

from ecosystem.cli import analyze, optimize, plot, report, reproduce, run, sweep, validate, viz
from ecosystem.cli.options import add_plugin, figure_output
from ecosystem.errors import EcosystemError, UsageError
from ecosystem.formats.scenario import ALLOW_OUTSIDE
from ecosystem.learned.plugins import PLUGINS, load_plugins

COMMANDS = (run, validate, analyze, optimize, reproduce, sweep, report, plot, viz)
"""The subcommand modules, in the order ``ecosystem --help`` lists them."""


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ecosystem", description="Simulate, analyse and study ecosystems of generative models "
                     "that retrain on each other's curated outputs. The options of one command: ecosystem COMMAND "
                     "--help.")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    for command_parser in sub.choices.values():
        add_plugin(command_parser)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (status 2 comes from :func:`main`)."""

    def error(self, message: str):
        raise UsageError(message)


@contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    """Set the environment variable ``name`` to ``value`` (None: leave it) for the command, so
    that study workers in other processes see it too; restored afterwards."""
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ecosystem`` command; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        load_plugins(args.plugin)     # a module that cannot be imported fails before anything runs
        with (_environment(ALLOW_OUTSIDE, "1" if getattr(args, "allow_outside_paths", False) else None),
              _environment(PLUGINS, ",".join(args.plugin) or None), figure_output(args)):
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
