"""``ecosystem validate``: check scenario files (build each once) without running them."""

from __future__ import annotations

import argparse

from ecosystem.core import flows
from ecosystem.formats.names import resolve
from ecosystem.formats.scenario import load


def register(sub) -> None:
    """Add the ``validate`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("scenarios", nargs="+")
    val.add_argument("--allow-outside-paths", action="store_true",
                     help="let files a scenario names (topology files) lie outside the scenario's folder")
    val.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    for name in args.scenarios:
        scenario = load(resolve(name))
        print(f"ok: {scenario.source}: {len(scenario.build().model_agents)} models, "
              f"{len(flows.nodes_of(scenario.graph, 'curator'))} curators, {scenario.family.kind}")
    return 0
