"""Options that several subcommands share."""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ecosystem.errors import UsageError

FIGURE_FORMATS = ("png", "pdf", "svg")
"""The formats of :mod:`ecosystem.formats.figures` (not imported here: it loads matplotlib)."""


def tidy(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` decimals for a printed table, without a signed zero
    (``-4.4e-16`` prints as ``0.0000``, not ``-0.0000``)."""
    return round(value, digits) + 0.0


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


def add_scenario(parser: argparse.ArgumentParser, what: str = "") -> None:
    """The ``scenario`` argument (default: the default scenario) and ``KEY=VALUE`` overrides after it."""
    parser.add_argument("scenario", nargs="?", help=f"scenario file or name{what} (default: the default scenario)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="set a scenario key, e.g. topology.n=12 steps=50 'models.m0.init=\"real\"' "
                             "(values are TOML: numbers, true/false, [lists]; other text is a string)")


def scenario_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``KEY=VALUE`` overrides of :func:`add_scenario` as dotted keys and values; a first
    argument with ``=`` is an override, not a scenario (``ecosystem run steps=5``)."""
    items = list(args.overrides)
    if args.scenario is not None and "=" in args.scenario:
        items.insert(0, args.scenario)
        args.scenario = None
    out: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key or not all(part.strip() for part in key.split(".")):
            raise UsageError(f"override {item!r}: expected KEY=VALUE with a dotted key, e.g. topology.n=12")
        try:
            out[key] = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError:
            out[key] = text                      # a bare word: a string (topology.kind=ring)
    return out


def load_scenario(args: argparse.Namespace):
    """The :class:`~ecosystem.formats.scenario.Scenario` of :func:`add_scenario`'s arguments."""
    from ecosystem.formats.names import resolve
    from ecosystem.formats.scenario import load

    overrides = scenario_overrides(args)
    return load(resolve(args.scenario), overrides)
