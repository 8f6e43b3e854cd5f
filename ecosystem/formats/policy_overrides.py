"""A curation policy as ``ecosystem run`` overrides: the ``KEY=VALUE`` scenario keys that give
an ecosystem the levers of a policy (:mod:`ecosystem.analysis.policy`).

A lever changes the inputs of one node: a curation ratio those of its model, the curated share of
a pool those of the pool. Per node, the keys that state its inputs in the scenario file are set
to the weights the policy gives them (:meth:`~ecosystem.analysis.policy.Problem.graph_at`):

- a node whose inputs are ``[[flows]]`` tables: ``flows.<i>.weight`` of each;
- a model with a ``mixture`` table: its shares (``real``, ``raw``, ``curated``, or the five
  shares ``real``, ``self_raw``, ``self_curated``, ``cross_raw``, ``cross_curated``);
- a model of a ``[topology]``: ``models.<name>.curation_ratio`` and ``models.<name>.real_share``.

Every answer is checked: the scenario with the overrides (and the remaining levers set as the
engine's events would) must build the policy's graph, every edge weight to 1e-10 (the keys
carry 12 significant digits); a lever that has no such key (a pool's curated share in a
generated ``shared_pool``, a curator's K or tau), or overrides that do not check, is left to
``[[events]]`` (:func:`ecosystem.analysis.policy.event_lines`).
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np

from ecosystem.analysis.policy import Problem
from ecosystem.core import flows
from ecosystem.errors import EcosystemError
from ecosystem.formats.scenario import parse, with_overrides

TOLERANCE = 1e-10
"""Largest difference of an edge weight between the overrides' graph and the policy's."""


def lever_overrides(data: dict, origin: str, problem: Problem, x: np.ndarray) -> tuple[dict[str, Any], list[int]]:
    """The overrides of the scenario dict ``data`` (read from ``origin``) that set the levers
    ``x`` ``(P,)`` of ``problem`` (12 significant digits), and the indices of the levers they leave to events (in lever
    order; all of them when the overrides do not build the policy's graph)."""
    target = problem.graph_at(x)
    out: dict[str, Any] = {}
    left = []
    done: set = set()
    for p, lever in enumerate(problem.levers):
        node = _node(lever.parameter)
        keys = None if node is None else _node_keys(data, target, node)
        if keys is None:
            left.append(p)
        elif node not in done:
            out.update({k: float(f"{v:.12g}") for k, v in keys.items()})   # 0.1, not 0.10000000000000009
            done.add(node)
    if out and not _builds(data, origin, out, problem, x, left, target):
        return {}, list(range(len(problem.levers)))
    return out, left


def _node(parameter) -> object | None:
    """The node whose inputs the lever sets (None: a lever of another kind, K or tau)."""
    if parameter.kind == "curation_ratio":
        return parameter.target
    if parameter.kind == "weight":
        return parameter.target[1]
    return None


def _node_keys(data: dict, graph: nx.DiGraph, node: object) -> dict[str, Any] | None:
    """The keys that state ``node``'s inputs in ``data``, at their weights in ``graph``; None if none do."""
    inputs = {u: float(graph.edges[u, node]["weight"]) for u in graph.predecessors(node)}
    spec = (data.get("models") or {}).get(node) if isinstance(data.get("models"), dict) else None
    listed = [(i, f) for i, f in enumerate(data.get("flows") or []) if isinstance(f, dict) and f.get("to") == node]
    if listed and not (isinstance(spec, dict) and "mixture" in spec):
        named = {f.get("from") for _, f in listed}
        if any(w > 0 and u not in named for u, w in inputs.items()):
            return None
        return {f"flows.{i}.weight": inputs.get(f.get("from"), 0.0) for i, f in listed}
    if isinstance(spec, dict) and isinstance(spec.get("mixture"), dict):
        return _mixture_keys(spec["mixture"], graph, node, inputs)
    if isinstance(data.get("topology"), dict) and flows.kind(graph, node) == "model":
        keys = {f"models.{node}.curation_ratio": flows.curation_ratio(graph, node)}
        if any(flows.kind(graph, u) == "source" for u in inputs):
            keys[f"models.{node}.real_share"] = flows.real_share(graph, node)
        return keys
    return None


def _mixture_keys(mixture: dict, graph: nx.DiGraph, node: object, inputs: dict) -> dict[str, float]:
    """A ``mixture`` table's shares at the input weights ``inputs`` of ``node`` in ``graph``."""
    totals = dict.fromkeys(("real", "self_raw", "self_curated", "cross_raw", "cross_curated"), 0.0)
    for u, w in inputs.items():
        k = flows.kind(graph, u)
        if k == "source":
            totals["real"] += w
        elif k == "curator":
            totals["self_curated" if flows.producer(graph, u) == node else "cross_curated"] += w
        else:
            totals["self_raw" if u == node else "cross_raw"] += w
    prefix = f"models.{node}.mixture."
    if any(k in mixture for k in ("raw", "curated", "raw_from", "curated_from")):
        shares = {"real": totals["real"], "raw": totals["self_raw"] + totals["cross_raw"],
                  "curated": totals["self_curated"] + totals["cross_curated"]}
    else:
        shares = totals
    return {prefix + k: v for k, v in shares.items() if v > 0 or k in mixture}


def _builds(data: dict, origin: str, overrides: dict[str, Any], problem: Problem, x: np.ndarray,
            left: list[int], target: nx.DiGraph) -> bool:
    """Whether the scenario with ``overrides``, then the levers ``left`` set in order, is ``target``."""
    try:
        graph = parse(with_overrides(data, overrides), origin=origin).graph
        for p in left:
            graph = problem.levers[p].parameter.set(graph, float(x[p]))
    except EcosystemError:
        return False
    weights = lambda g: {(u, v): float(w) for u, v, w in g.edges(data="weight") if w}  # noqa: E731
    got, want = weights(graph), weights(target)
    return all(abs(got.get(e, 0.0) - want.get(e, 0.0)) <= TOLERANCE for e in got.keys() | want.keys())
