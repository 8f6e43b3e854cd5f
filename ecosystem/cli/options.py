"""Options that several subcommands share."""

from __future__ import annotations

import argparse


def add_allow_outside_paths(parser: argparse.ArgumentParser) -> None:
    """``--allow-outside-paths``: files a scenario names may lie outside the scenario's folder."""
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="let files a scenario names (topology files) lie outside the scenario's folder")
