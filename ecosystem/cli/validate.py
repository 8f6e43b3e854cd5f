"""``ecosystem validate``: check scenario files (build each once) without running them."""

from __future__ import annotations

import argparse

from ecosystem.cli.options import add_allow_outside_paths
from ecosystem.core import flows
from ecosystem.formats.names import resolve
from ecosystem.formats.scenario import load


def register(sub) -> None:
    """Add the ``validate`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("scenarios", nargs="+")
    add_allow_outside_paths(val)
    val.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    for name in args.scenarios:
        scenario = load(resolve(name))
        print(f"ok: {scenario.source}: {len(scenario.build().model_agents)} models, "
              f"{len(flows.nodes_of(scenario.graph, 'curator'))} curators, {scenario.family.kind}")
    return 0
