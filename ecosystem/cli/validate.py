"""``ecosystem validate``: check scenario files (build each once) without running them.

A scripted event that is valid but cannot change the run (it acts on a curator or source whose data
reaches no model, or sets a value the target already has) is reported on a ``warning:`` line on
stderr; the exit status stays 0.
"""

from __future__ import annotations

import argparse
import math
import sys

import networkx as nx

from ecosystem.cli.options import add_allow_outside_paths
from ecosystem.core import events, flows
from ecosystem.formats.names import resolve
from ecosystem.formats.scenario import Scenario, load


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
        for warning in ineffective_events(scenario):
            print(f"warning: {scenario.source}: {warning}", file=sys.stderr)
    return 0


SETTERS = frozenset({"set_curation_ratio", "set_real_share", "set_sample_size", "set_retention", "set_K", "set_tau",
                     "set_reward", "set_flow", "scale_real_share"})
"""Actions that set a value; one that sets the value the target already has changes nothing."""


def ineffective_events(scenario: Scenario) -> list[str]:
    """One line per scripted event of ``scenario`` that cannot change its run: at a round where it sets
    a value the target already has, or on a curator or source (or the flows into one) whose data
    reaches no model then or at any later event of the run."""
    graph = scenario.graph.copy()
    change = events.Change(graph=graph, builder=scenario.builder)
    timeline = sorted(((r, i, s) for i, s in enumerate(scenario.events)
                       for r in events.rounds_of(s, scenario.steps)), key=lambda x: x[:2])
    same, changed, unread = {}, set(), {}     # by event index; a recurring event counts once
    for r, i, spec in timeline:
        where = f"events[{i}] ({spec.action} {spec.target!r}) at round {r}"
        node = _node(spec)
        if node is not None and not _reaches_a_model(graph, node):
            unread.setdefault(i, f"{where}: no model trains on the data of {node!r}, so it changes nothing")
        old, new = change(spec.action, spec.target, spec.value)
        if spec.action in SETTERS and _same(old, new) and i not in changed:
            same.setdefault(i, f"{where}: the value is already in place, so it changes nothing")
        else:
            changed.add(i)
            same.pop(i, None)
        unread = {j: text for j, text in unread.items() if not _reaches_a_model(graph, _node(scenario.events[j]))}
    return [text for _, text in sorted((same | unread).items())]


def _node(spec: events.EventSpec) -> str | None:
    """The existing node whose data an event changes (a flow's consumer); None for the new nodes of
    ``add_*`` actions and for ``"all"``."""
    if spec.action in ("add_model", "add_curator") or spec.target == "all":
        return None
    return spec.target.partition("->")[2].strip() or spec.target


def _reaches_a_model(graph: nx.DiGraph, node: str) -> bool:
    """Whether ``node`` is a model or its data reaches one along flows of positive weight."""
    if node not in graph:
        return False
    live = nx.subgraph_view(graph, filter_edge=lambda u, v: graph.edges[u, v].get("weight") != 0)
    return any(flows.kind(graph, v) == "model" for v in nx.descendants(live, node) | {node})


def _same(old, new) -> bool:
    if isinstance(old, int | float) and isinstance(new, int | float):
        return math.isclose(old, new, rel_tol=1e-12, abs_tol=1e-12)
    return old == new
