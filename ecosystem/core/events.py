"""Scripted interventions: changes to a running ecosystem at given rounds.

An event ``(round, action, target, value)`` takes effect *before* round ``round`` is
computed (the first round that sees the change is ``round``; the collected row of round
``round - 1`` still shows the old ecosystem). Recurring events repeat ``every`` k rounds
from ``round`` until ``until`` (inclusive). Events are executed by Mesa's event
scheduler (``schedule_event`` / ``schedule_recurring``) at time ``round - 0.5``, between
two steps; events at the same round apply in the order they were scheduled.

Actions (``target`` / ``value``):

==================== =================== =============================================
action               target              value
==================== =================== =============================================
set_curation_ratio   model               lambda in [0, 1] (other inputs absorb it in
                                         proportion), or {ratio = lambda, absorb =
                                         proportional | real | raw}
set_real_share       model               share in [0, 1] (other inputs absorb it)
set_sample_size      model               integer >= 1
set_retention        model               replace | accumulate | subsample
set_K, set_tau       curator             K >= 1 / tau > 0
set_reward           curator             a reward name (all users share it)
set_flow             "u->v"              weight in [0, 1] (v's other inputs absorb it)
add_flow             "u->v"              weight in [0, 1] (v's other inputs absorb it)
remove_flow          "u->v"              (none) v's other inputs are rescaled
add_model            new name            {init, sample_size, retention,
                                         retraining_rate, eval_reward,
                                         inputs = [{from, weight}, ...]}; init is a
                                         source name, ``{copy = "model"}`` or a
                                         distribution table
remove_model         model               (none) its curators go too; consumers rescale
add_curator          new name            {curates, rule, K, tau, reward | users,
                                         feeds = [{to, weight}, ...]}
remove_curator       curator             (none) consumers rescale their other inputs
set_real_data        source              a distribution table
scale_real_share     model or "all"      factor >= 0 (real shares capped at 1)
==================== =================== =============================================

The same events given in a scenario file (``[[events]]``) or from Python
(:func:`schedule`) give identical runs for the same seed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
from mesa.time import Schedule

from ecosystem.core import flows
from ecosystem.errors import EventError, show

INT_MAX = 2**63 - 1
"""The largest integer any key or event value takes (int64)."""
MAX_ABS = 1e100
"""The largest magnitude of any real number in a scenario or event (coordinates, means, weights,
offsets, reward parameters, factors): squares and products of two of them stay finite."""
MIN_POSITIVE = 1e-100
"""The smallest value of a positive scale (``var``, ``tau``): its inverse stays finite."""
APPLICATIONS_MAX = 10_000
"""The most event applications of one run (recurring events count once per round they apply)."""
K_MAX = 10_000
"""The largest number of candidates ``K`` of a curator."""
SAMPLE_SIZE_MAX = 10_000_000
"""The largest ``sample_size`` of a model."""

GAUSSIAN_BEST_OF_K_MAX = 500
"""The largest ``K`` of a ``best_of_k`` curator in the Gaussian family (the order statistics of
larger K leave the floats: K = 1100 overflows)."""


def check_limits(graph: nx.DiGraph, family_kind: str) -> None:
    """Raise :class:`EventError` if a curator of ``graph`` asks for more than the family computes."""
    if family_kind != "gaussian":
        return
    for name in flows.nodes_of(graph, "curator"):
        rule = graph.nodes[name]["curator"].rule
        if type(rule).__name__ == "BestOfK" and rule.K > GAUSSIAN_BEST_OF_K_MAX:
            raise EventError(f"curator {name!r}: K = {rule.K} exceeds {GAUSSIAN_BEST_OF_K_MAX}, the largest "
                             f"best_of_k K of the gaussian family")


def _integer(value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise EventError(f"value must be an integer in [{lo}, {hi}], got {show(value)}")
    return value


def _positive(value: Any, what: str = "value") -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float) or not MIN_POSITIVE <= value <= MAX_ABS):
        raise EventError(f"{what} must be a number in [{MIN_POSITIVE:g}, {MAX_ABS:g}], got {show(value)}")
    return float(value)


def _int64(value: Any, depth: int = 0) -> None:
    """Raise :class:`EventError` for an integer beyond int64 (or nesting beyond 100) anywhere in ``value``."""
    if depth > 100:
        raise EventError("value is nested too deeply")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_MAX:
        raise EventError(f"integers must be at most {INT_MAX} (2**63 - 1), got {show(value)}")
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for v in value:
            _int64(v, depth + 1)


@dataclass(frozen=True)
class EventSpec:
    """One scripted change: at ``round`` (and every ``every`` rounds until ``until``)."""

    round: int
    action: str
    target: str
    value: Any = None
    every: int | None = None
    until: int | None = None

    def describe(self) -> str:
        return f"{self.action} {self.target!r} at round {self.round}"


# --------------------------------------------------------------------------- graph changes


def _edge(target: str) -> tuple[str, str]:
    u, arrow, v = str(target).partition("->")
    if not arrow or not u.strip() or not v.strip():
        raise EventError(f"target {target!r} must name a flow as 'from->to'")
    return u.strip(), v.strip()


def _need(graph: nx.DiGraph, name: str, *kinds: str) -> None:
    if name not in graph:
        raise EventError(f"unknown {'/'.join(kinds)} {name!r}")
    if flows.kind(graph, name) not in kinds:
        raise EventError(f"{name!r} is a {flows.kind(graph, name)}, not a {'/'.join(kinds)}")


def _share(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise EventError(f"{what} must be a number in [0, 1], got {show(value)}")
    return float(value)


def _ratio(value: Any) -> tuple[float, str]:
    """A ``set_curation_ratio`` value: lambda, or ``{ratio = lambda, absorb = "real"}``
    (:data:`ecosystem.core.flows.ABSORB`; default ``proportional``)."""
    if not isinstance(value, dict):
        return _share(value, "value"), "proportional"
    if "ratio" not in value or set(value) - {"ratio", "absorb"}:
        raise EventError(f"value must be a number or a table {{ratio, absorb}}, got {show(value)}")
    absorb = value.get("absorb", "proportional")
    if absorb not in flows.ABSORB:
        raise EventError(f"value.absorb must be one of {', '.join(flows.ABSORB)}, got {show(absorb)}")
    return _share(value["ratio"], "value.ratio"), absorb


def set_edge_weight(graph: nx.DiGraph, u: str, v: str, weight: float) -> None:
    """Give ``u -> v`` weight ``weight`` (adding the edge if needed); v's other inputs absorb it."""
    others = [(x, v) for x in graph.predecessors(v) if x != u]
    rest = sum(graph.edges[e]["weight"] for e in others)
    if weight < 1 and rest <= 0:
        raise EventError(f"'{v}' has no other input to absorb the change of '{u}' -> '{v}'")
    for e in others:
        graph.edges[e]["weight"] *= (1 - weight) / rest
    if graph.has_edge(u, v):
        graph.edges[u, v]["weight"] = weight
    else:
        graph.add_edge(u, v, weight=weight)


def _drop_inputs(graph: nx.DiGraph, nodes: set[str]) -> None:
    """Remove ``nodes`` and the curators judging them; every consumer left rescales its
    remaining inputs to sum to 1."""
    gone = set(nodes) | {v for u in nodes for v in graph.successors(u) if flows.kind(graph, v) == "curator"}
    consumers = {v for u in gone for v in graph.successors(u) if v not in gone}
    graph.remove_nodes_from(gone)
    for v in consumers:
        _rescale_inputs(graph, v)


def _rescale_inputs(graph: nx.DiGraph, v: str) -> None:
    """Scale ``v``'s remaining input shares so they sum to 1 again."""
    total = sum(w for _, _, w in graph.in_edges(v, data="weight"))
    if total <= 0:
        raise EventError(f"'{v}' would be left with no inputs")
    for e in graph.in_edges(v):
        graph.edges[e]["weight"] /= total


def _inputs(graph: nx.DiGraph, name: str, entries: Any, key: str, other: str) -> list[tuple[str, float]]:
    if not isinstance(entries, list) or not entries:
        raise EventError(f"{key} must be a non-empty list of {{{other}, weight}} tables")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {other, "weight"}:
            raise EventError(f"{key}[{i}] must be a table with exactly the keys {other} and weight")
        if entry[other] not in graph and entry[other] != name:
            raise EventError(f"{key}[{i}].{other}: unknown node {entry[other]!r}")
        out.append((entry[other], _share(entry["weight"], f"{key}[{i}].weight")))
    return out


# --------------------------------------------------------------------------- actions


class Change:
    """Apply an action to a model (``apply``) or, for validation, to a graph only (``dry``)."""

    def __init__(self, model=None, graph: nx.DiGraph | None = None, builder=None) -> None:
        self.model = model
        self.graph = model.graph if model is not None else graph
        self.builder = builder if builder is not None else model.builder

    def __call__(self, action: str, target: str, value: Any) -> tuple[Any, Any]:
        if action not in ACTIONS:
            raise EventError(f"unknown action {action!r} (actions: {', '.join(ACTIONS)})")
        try:
            _int64(value)
            return ACTIONS[action](self, str(target), value)
        except EventError as err:
            raise EventError(f"{action} {str(target)!r}: {err}") from None

    # -- model knobs
    def set_curation_ratio(self, target, value):
        _need(self.graph, target, "model")
        ratio, absorb = _ratio(value)
        old = flows.curation_ratio(self.graph, target)
        try:
            flows.set_curation_ratio(self.graph, target, ratio, absorb)
        except flows.FlowError as err:
            raise EventError(str(err)) from None
        return old, ratio

    def set_real_share(self, target, value):
        _need(self.graph, target, "model")
        old = flows.real_share(self.graph, target)
        try:
            flows.set_share(self.graph, target, ("source",), _share(value, "value"))
        except flows.FlowError as err:
            raise EventError(str(err)) from None
        return old, value

    def set_sample_size(self, target, value):
        _need(self.graph, target, "model")
        value = _integer(value, 1, SAMPLE_SIZE_MAX)
        old = self.graph.nodes[target].get("sample_size", 1000)
        self.graph.nodes[target]["sample_size"] = value
        return old, value

    def set_retention(self, target, value):
        _need(self.graph, target, "model")
        if value not in ("replace", "accumulate", "subsample"):
            raise EventError(f"value must be replace, accumulate or subsample, got {value!r}")
        old = self.graph.nodes[target].get("retention", "replace")
        self.graph.nodes[target]["retention"] = value
        return old, value

    # -- curators
    def _rule(self, target, field, value):
        _need(self.graph, target, "curator")
        cur = self.graph.nodes[target]["curator"]
        if not hasattr(cur.rule, field):
            raise EventError(f"curator {target!r} uses rule {type(cur.rule).__name__}, which has no {field}")
        _integer(value, 1, K_MAX) if field == "K" else _positive(value)
        old = getattr(cur.rule, field)
        self.graph.nodes[target]["curator"] = cur.with_rule(**{field: value})
        return old, value

    def set_K(self, target, value):
        return self._rule(target, "K", value)

    def set_tau(self, target, value):
        return self._rule(target, "tau", value)

    def set_reward(self, target, value):
        _need(self.graph, target, "curator")
        cur = self.graph.nodes[target]["curator"]
        reward = self.builder.reward(value)
        self.graph.nodes[target]["curator"] = dataclasses.replace(cur, rewards=[reward], weights=np.ones(1))
        return "+".join(r.name for r in cur.rewards), value

    # -- flows
    def set_flow(self, target, value):
        u, v = _edge(target)
        if not self.graph.has_edge(u, v):
            raise EventError(f"no flow {u!r} -> {v!r} (use add_flow)")
        old = self.graph.edges[u, v]["weight"]
        set_edge_weight(self.graph, u, v, _share(value, "value"))
        return old, value

    def add_flow(self, target, value):
        u, v = _edge(target)
        for node in (u, v):
            if node not in self.graph:
                raise EventError(f"unknown node {node!r}")
        if self.graph.has_edge(u, v):
            raise EventError(f"flow {u!r} -> {v!r} exists already (use set_flow)")
        _need(self.graph, v, "model", "pool")
        set_edge_weight(self.graph, u, v, _share(value, "value"))
        return None, value

    def remove_flow(self, target, value):
        u, v = _edge(target)
        if not self.graph.has_edge(u, v):
            raise EventError(f"no flow {u!r} -> {v!r}")
        old = self.graph.edges[u, v].get("weight")
        if flows.kind(self.graph, v) != "curator":
            if not any(x != u and w > 0 for x, _, w in self.graph.in_edges(v, data="weight")):
                raise EventError(f"'{v}' would be left with no inputs")
            self.graph.remove_edge(u, v)
            _rescale_inputs(self.graph, v)
        else:
            self.graph.remove_edge(u, v)
        return old, None

    # -- agents appearing and disappearing
    def _new_node(self, target, value, keys: str) -> dict:
        """A copy of the table ``value`` describing a new node named ``target`` (a free name)."""
        if target in self.graph:
            raise EventError(f"name {target!r} is already used")
        if not isinstance(value, dict):
            raise EventError(f"value must be a table {keys}")
        return dict(value)

    def add_model(self, target, value):
        spec = self._new_node(target, value, "{init, sample_size, retention, retraining_rate, eval_reward, inputs}")
        inputs = _inputs(self.graph, target, spec.pop("inputs", None), "inputs", "from")
        init = spec.get("init")
        if isinstance(init, dict) and set(init) == {"copy"}:
            _need(self.graph, init["copy"], "model")
            del spec["init"]
            copied = (self.model.state[self.model.index_of(init["copy"])] if self.model is not None
                      else self.graph.nodes[init["copy"]]["moments"])
            attrs = self.builder.model_attrs(spec, target, moments=copied)
        else:
            attrs = self.builder.model_attrs(spec, target)
        if abs(sum(w for _, w in inputs) - 1) > flows.SHARE_TOLERANCE:
            raise EventError(f"inputs of {target!r} must sum to 1, got {sum(w for _, w in inputs):g}")
        self.graph.add_node(target, **attrs)
        for u, w in inputs:
            self.graph.add_edge(u, target, weight=w)
        return None, "added"

    def remove_model(self, target, value):
        _need(self.graph, target, "model")
        if len(flows.nodes_of(self.graph, "model")) == 1:
            raise EventError("cannot remove the last model")
        _drop_inputs(self.graph, {target})
        return "present", None

    def add_curator(self, target, value):
        spec = self._new_node(target, value, "{curates, rule, K, tau, reward | users, feeds}")
        feeds = _inputs(self.graph, target, spec.pop("feeds", None), "feeds", "to")
        judged = spec.pop("curates", None)
        if judged not in self.graph or flows.kind(self.graph, judged) == "curator":
            raise EventError(f"curates: unknown model, source or pool {judged!r}")
        self.graph.add_node(target, kind="curator", curator=self.builder.curator(spec, target))
        self.graph.add_edge(judged, target)
        for v, w in feeds:
            _need(self.graph, v, "model", "pool")
            set_edge_weight(self.graph, target, v, w)
        return None, "added"

    def remove_curator(self, target, value):
        _need(self.graph, target, "curator")
        _drop_inputs(self.graph, {target})
        return "present", None

    # -- real data
    def set_real_data(self, target, value):
        _need(self.graph, target, "source")
        self.graph.nodes[target]["moments"] = self.builder.distribution(value, target)
        return "previous", "replaced"

    def scale_real_share(self, target, value):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_ABS:
            raise EventError(f"value must be a factor in [0, {MAX_ABS:g}], got {show(value)}")
        models = flows.nodes_of(self.graph, "model") if target == "all" else [target]
        if target != "all":
            _need(self.graph, target, "model")
        old = [flows.real_share(self.graph, m) for m in models]
        for m, share in zip(models, old, strict=True):
            if share > 0:
                try:
                    flows.set_share(self.graph, m, ("source",), min(1.0, share * value))
                except flows.FlowError as err:
                    raise EventError(str(err)) from None
        return float(np.mean(old)), float(np.mean([flows.real_share(self.graph, m) for m in models]))


ACTIONS: dict[str, Callable] = {
    name: getattr(Change, name)
    for name in ("set_curation_ratio", "set_real_share", "set_sample_size", "set_retention", "set_K", "set_tau",
                 "set_reward", "set_flow", "add_flow", "remove_flow", "add_model", "remove_model",
                 "add_curator", "remove_curator", "set_real_data", "scale_real_share")
}


def rounds_of(spec: EventSpec, last: int | None = None) -> list[int]:
    """The rounds at which ``spec`` applies (up to ``last`` when it recurs without end)."""
    if spec.every is None:
        return [spec.round]
    end = spec.until if spec.until is not None else last
    return list(range(spec.round, (end if end is not None else spec.round) + 1, spec.every))


GROWING = frozenset({"add_model", "add_curator", "add_flow", "set_flow", "set_sample_size", "set_retention",
                     "set_K", "set_tau", "set_reward"})
"""Actions that can make a round need more memory (more nodes, edges, samples or candidates, a
finer Luce grid); the dry run checks the memory budget after each (``check``)."""


def dry_run(graph: nx.DiGraph, builder, specs: list[EventSpec], steps: int, family_kind: str,
            dim: int | None, check: Callable[[nx.DiGraph], object] | None = None) -> nx.DiGraph:
    """Apply ``specs`` in time order to a copy of ``graph``; raise :class:`EventError` at the first bad
    one. ``check(graph)`` (e.g. the memory budget) runs after each event of :data:`GROWING`.
    Returns the graph as the events leave it after ``steps`` rounds."""
    count = sum(len(range(s.round, (s.until if s.until is not None else steps) + 1, s.every))
                if s.every is not None else 1 for s in specs)
    if count > APPLICATIONS_MAX:
        raise EventError(f"the events apply {count} times in the run; at most {APPLICATIONS_MAX} "
                         f"(give recurring events a larger every or an until)")
    graph = graph.copy()
    timeline = sorted(((r, i, s) for i, s in enumerate(specs) for r in rounds_of(s, steps)), key=lambda x: x[:2])
    for r, i, spec in timeline:
        try:
            Change(graph=graph, builder=builder)(spec.action, spec.target, spec.value)
            flows.validate(graph, family_kind, dim)
            check_limits(graph, family_kind)
            if check is not None and spec.action in GROWING:
                check(graph)
        except ValueError as err:                    # EventError, FlowError, ScenarioError (BudgetError too)
            raise EventError(f"events[{i}] at round {r}: {err}") from None
    return graph


def render(value: Any) -> str:
    """A value as written in ``events.csv``."""
    if value is None or isinstance(value, str):
        return "" if value is None else value
    return json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))


class _Scheduled:
    """A callable kept alive by the model (Mesa holds event callbacks weakly)."""

    def __init__(self, model, spec: EventSpec) -> None:
        self.model, self.spec = model, spec

    def __call__(self) -> None:
        self.model.apply(self.spec.action, self.spec.target, self.spec.value, at=round(self.model.time + 0.5))


class _Condition:
    def __init__(self, model, condition, action, once: bool, label: str) -> None:
        self.model, self.condition, self.action, self.once, self.label = model, condition, action, once, label
        self.done = False

    def __call__(self) -> None:
        if self.done or not self.condition(self.model):
            return
        self.done = self.once
        self.model.log_event(round(self.model.time + 0.5), "when", self.label, "", "triggered")
        self.action(self.model)


def schedule(model, spec: EventSpec) -> None:
    """Register ``spec`` on ``model`` with Mesa's event scheduler."""
    call = _Scheduled(model, spec)
    model.scripted.append(call)
    if spec.round < 1:
        raise EventError(f"{spec.describe()}: round must be >= 1")
    if spec.round - 0.5 < model.time:
        raise EventError(f"{spec.describe()}: round {spec.round} has already been computed")
    if spec.every is None:
        model.schedule_event(call, at=spec.round - 0.5)
    else:
        model.schedule_recurring(call, Schedule(interval=spec.every, start=spec.round - 0.5,
                                                end=None if spec.until is None else spec.until - 0.5))


def when(model, condition: Callable, action: Callable, once: bool = True, label: str = "condition") -> None:
    """After every round, if ``condition(model)`` holds, call ``action(model)`` (once, by default)."""
    call = _Condition(model, condition, action, once, label)
    model.scripted.append(call)
    model.schedule_recurring(call, Schedule(interval=1, start=model.time + 0.5))
