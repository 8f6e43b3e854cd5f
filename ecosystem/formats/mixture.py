"""A model's training mix stated as the paper states it: five shares in one table.

``[models.NAME] users = {reward, rule, K, tau}`` are the model's users, and
``[models.NAME.mixture]`` gives the shares of its training set (they sum to 1):

- ``real``: real data (from ``real_source``, default the first source);
- ``self_raw`` / ``self_curated``: its own outputs, raw / curated by its own users;
- ``cross_raw`` / ``cross_curated``: the outputs of the models ``cross_from`` (default: every
  other model with a mixture or users; split equally), raw / curated;
- ``cross_curator``: who judges the cross-curated data, ``"producer"`` (the producer's users,
  as in the paper's experiments) or ``"consumer"`` (this model's users judging the producer's
  outputs);
- ``cross_inputs`` (conditional families): whose inputs the cross pairs use, ``"producer"``
  (the producer's pool, the paper's language-model study) or ``"consumer"``.

Or, as a researcher says "A curates 60% of its data, 70% of that from B": ``real``, ``curated``
and ``raw`` shares with relative weights per producer among each kind, normalised within it,
``curated_from = {A = 0.3, B = 0.7}`` and ``raw_from = {...}`` (default: the model itself).

A model with ``users`` is measured by them (its ``eval_reward``, unless it gives one), also when
other models' users judge its outputs too. The table expands into ordinary nodes and flows: the
curator ``"<m>.users"`` (m's users judging m) and, for consumer-side curation, ``"<m>.users@<j>"``
(m's users judging j's outputs).
"""

from __future__ import annotations

import networkx as nx

from ecosystem.core.curation import Curator
from ecosystem.core.flows import SHARE_TOLERANCE
from ecosystem.formats.section import Section

SHARES = ("real", "self_raw", "self_curated", "cross_raw", "cross_curated")
WEIGHTED = ("raw", "curated", "raw_from", "curated_from")
KEYS = {*SHARES, *WEIGHTED, "real_source", "cross_from", "cross_curator", "cross_inputs"}
SIDES = ("producer", "consumer")


def users_node(model: str, producer: str | None = None) -> str:
    """The curator node of ``model``'s users judging ``producer``'s outputs (default: its own)."""
    return f"{model}.users" if producer in (None, model) else f"{model}.users@{producer}"


def expand(graph: nx.DiGraph, mixes: dict[str, Section], users: dict[str, Curator], sources: list[str],
           conditional: bool) -> None:
    """Add the nodes and flows of every model's ``mixture`` table (``mixes``: model -> its table;
    ``users``: model -> its users) to ``graph``, which already holds the models and sources."""
    known = list(dict.fromkeys([*mixes, *users]))
    for model, sec in mixes.items():
        sec.only(KEYS)
        weighted = [k for k in WEIGHTED if k in sec.data]
        if weighted and any(k in sec.data for k in SHARES[1:]):
            sec.fail(f"give either {', '.join(SHARES[1:])} or curated/raw with their weights, not both", weighted[0])
        real, raw, curated = _relative(sec, model, known) if weighted else _five_way(sec, model, known)
        total = real + sum(raw.values()) + sum(curated.values())
        if abs(total - 1.0) > SHARE_TOLERANCE:
            sec.fail(f"shares sum to {total:g}, not 1")
        side = sec.text("cross_curator", "producer", SIDES)
        if "cross_inputs" in sec.data and not conditional:
            sec.fail("needs a conditional family (whose samples have inputs)", "cross_inputs")
        pair = {"inputs": sec.text("cross_inputs", "producer", SIDES)} if conditional else {}
        flows: list[tuple[str, float, dict]] = []
        if real > 0:
            if not sources:
                sec.fail("a real share needs a [sources] entry", "real")
            name = sec.text("real_source", sources[0])
            if name not in sources:
                sec.fail(f"unknown source {name!r} (sources: {', '.join(sources)})", "real_source")
            flows.append((name, real, {}))
        for j, w in raw.items():
            flows.append((j, w, {} if j == model else dict(pair)))
        for j, w in curated.items():
            judge = _judge(graph, sec, users, j if side == "producer" or j == model else model, j)
            flows.append((judge, w, {} if j == model else dict(pair)))
        for u, w, attrs in flows:
            if w > 0:
                graph.add_edge(u, model, weight=w, **attrs)
    for model, who in users.items():      # a model is measured by its own users, whoever else judges it
        graph.nodes[model].setdefault("eval_reward", who.preference)


def _five_way(sec: Section, model: str, known: list[str]) -> tuple[float, dict, dict]:
    """Real share and the raw / curated shares per producer of the five-share form."""
    shares = {k: sec.number(k, 0.0, lo=0, hi=1) for k in SHARES}
    others = _names(sec, "cross_from", sec.data.get("cross_from", [m for m in known if m != model]), model, known)
    if (shares["cross_raw"] > 0 or shares["cross_curated"] > 0) and not others:
        sec.fail("cross shares need other models (cross_from)", "cross_from")
    raw = {model: shares["self_raw"]} | {j: shares["cross_raw"] / len(others) for j in others}
    curated = {model: shares["self_curated"]} | {j: shares["cross_curated"] / len(others) for j in others}
    return shares["real"], raw, curated


def _relative(sec: Section, model: str, known: list[str]) -> tuple[float, dict, dict]:
    """Real share and the raw / curated shares per producer of the ``curated``/``raw`` form: each
    kind's total split by its relative weights ``{producer = weight}`` (normalised)."""
    out = []
    for kind in ("raw", "curated"):
        total = sec.number(kind, 0.0, lo=0, hi=1)
        key = f"{kind}_from"
        table = sec.data.get(key, {model: 1.0})
        if not isinstance(table, dict) or not table:
            sec.fail("must be a table of relative weights {model = weight}", key)
        _names(sec, key, list(table), None, known)
        weights = {j: Section(table, f"{sec.where}.{key}", sec.origin).number(j, lo=0) for j in table}
        norm = sum(weights.values())
        if total > 0 and norm <= 0:
            sec.fail("weights must have a positive sum", key)
        out.append({j: total * w / norm for j, w in weights.items()} if total > 0 else {})
    return sec.number("real", 0.0, lo=0, hi=1), out[0], out[1]


def _names(sec: Section, key: str, value: object, model: str | None, known: list[str]) -> list[str]:
    """``value``: names of models with users or a mixture (other than ``model``, if given)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        sec.fail("must be a list of model names", key)
    for v in value:
        if v not in known or v == model:
            sec.fail(f"{v!r} is not {'another' if model else 'a'} model with users or a mixture "
                     f"(known: {', '.join(known)})", key)
    return list(value)


def _judge(graph: nx.DiGraph, sec: Section, users: dict[str, Curator], who: str, producer: str) -> str:
    """The curator node of ``who``'s users judging ``producer``, added on first use."""
    if who not in users:
        sec.fail(f"needs the users of model {who!r} ([models.{who}] users = {{reward = ...}})")
    node = users_node(who, producer)
    if node not in graph:
        graph.add_node(node, kind="curator", curator=users[who])
        graph.add_edge(producer, node)
    elif graph.nodes[node].get("curator") is not users[who]:
        sec.fail(f"the name {node!r} (for {who}'s users judging {producer}) is already used")
    return node
