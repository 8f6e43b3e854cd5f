"""Options that several subcommands share."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from ecosystem.errors import UsageError

FIGURE_FORMATS = ("png", "pdf", "svg")
"""The formats of :mod:`ecosystem.formats.figures` (not imported here: it loads matplotlib)."""


def add_allow_outside_paths(parser: argparse.ArgumentParser) -> None:
    """``--allow-outside-paths``: files a scenario names may lie outside the scenario's folder."""
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="let files a scenario names (topology files) lie outside the scenario's folder")


def add_figure_options(parser: argparse.ArgumentParser) -> None:
    """``--format png|pdf|svg`` and ``--dpi``: how the command's figures are written."""
    parser.add_argument("--format", dest="figure_format", choices=FIGURE_FORMATS, default="png",
                        help="file format of the figures (default png)")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of raster figures and images (default 150)")


@contextmanager
def figure_output(args: argparse.Namespace) -> Iterator[None]:
    """Run a command with the figure format and resolution of its :func:`add_figure_options`
    (nothing for a command that draws no figures)."""
    if getattr(args, "figure_format", None) is None:
        yield
        return
    if not 10 <= args.dpi <= 2400:
        raise UsageError(f"--dpi must lie in 10..2400, got {args.dpi}")
    from ecosystem.formats import figures

    with figures.output(args.figure_format, args.dpi):
        yield


def add_plugin(parser: argparse.ArgumentParser) -> None:
    """``--plugin MODULE`` (repeatable): import a module that registers learned models, datasets
    or rewards (:mod:`ecosystem.learned`) before the scenario is read."""
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it registers learned models, datasets or rewards); repeatable")
