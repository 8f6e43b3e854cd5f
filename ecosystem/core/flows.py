"""The data-flow graph: who trains on whose (curated) outputs, in what shares.

A ``networkx.DiGraph`` whose nodes carry ``kind``:

- ``source``: real data (attribute ``moments``: the distribution's moment row);
- ``model``: a generative model (attributes ``moments`` (initial), ``sample_size``,
  ``retention``, optional ``eval_reward``);
- ``curator``: a population of users (attribute ``curator``: :class:`~ecosystem.core.curation.Curator`)
  judging the outputs of exactly one producer (model, source or pool): the edge
  ``producer -> curator`` carries no weight;
- ``pool``: a shared pool ("the internet"): each round, the mixture of its inputs.

An edge ``u -> v`` into a model or pool has ``weight``: the share of v's training mix
drawn from u; the weights into each model and pool sum to 1. ``j -> c -> i`` means
model i trains on j's outputs curated by c (THEORY.md section 4: H_j is curation by
j's own users). The *curation ratio* of a model is the total weight of its curator
in-edges. An edge into a model may carry ``transform = (A, b)``: the producer's outputs
``x`` arrive as ``A x + b`` (Gaussian family only). A model may train on itself (self-loop).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from ecosystem.errors import FlowError

KINDS = ("source", "model", "curator", "pool")
SHARE_TOLERANCE = 1e-9


def kind(graph: nx.DiGraph, node: object) -> str:
    return graph.nodes[node]["kind"]


def nodes_of(graph: nx.DiGraph, *kinds: str) -> list:
    """Nodes of the given kinds, in graph order."""
    return [v for v, k in graph.nodes(data="kind") if k in kinds]


def validate(graph: nx.DiGraph, family_kind: str = "categorical", dim: int | None = None) -> None:
    """Raise :class:`FlowError` naming the first problem found in ``graph``."""
    if not nodes_of(graph, "model"):
        raise FlowError("the data-flow graph has no model node")
    for v, k in graph.nodes(data="kind"):
        if k not in KINDS:
            raise FlowError(f"node '{v}': kind {k!r} is not one of {', '.join(KINDS)}")
    for u, v, data in graph.edges(data=True):
        ku, kv = kind(graph, u), kind(graph, v)
        if kv == "source":
            raise FlowError(f"edge '{u}' -> '{v}': a source has no inputs")
        if ku == "curator" and kv == "curator":
            raise FlowError(f"edge '{u}' -> '{v}': a curator cannot curate another curator's output")
        if kv == "curator":
            if ku == "pool" and family_kind == "gaussian":
                raise FlowError(f"edge '{u}' -> '{v}': a Gaussian-family curator judges a model or source, not a pool")
            continue
        w = data.get("weight")
        if w is None or not np.isfinite(w) or w < 0:
            raise FlowError(f"edge '{u}' -> '{v}': weight must be a finite share >= 0, got {w!r}")
        if u == v and kv != "model":
            raise FlowError(f"edge '{u}' -> '{v}': only a model may train on itself")
        if data.get("transform") is not None:
            _check_transform(u, v, kv, data["transform"], family_kind, dim)
    for v in graph.nodes:
        k = kind(graph, v)
        preds = list(graph.predecessors(v))
        if k == "curator":
            if len(preds) != 1:
                raise FlowError(f"curator '{v}': must judge exactly one producer, has {len(preds)}")
        elif k in ("model", "pool"):
            if not preds:
                raise FlowError(f"{k} '{v}': has no inputs (give it at least one in-edge)")
            total = sum(graph.edges[u, v]["weight"] for u in preds)
            if abs(total - 1.0) > SHARE_TOLERANCE:
                raise FlowError(f"{k} '{v}': input shares sum to {total:.6g}, not 1")
    derived = graph.subgraph(nodes_of(graph, "curator", "pool"))
    try:
        cycle = nx.find_cycle(derived)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join(f"'{u}'" for u, _ in cycle) + f" -> '{cycle[0][0]}'"
    raise FlowError(f"cycle through curators/pools with no model in between: {path}")


def _check_transform(u, v, kv, transform, family_kind, dim) -> None:
    if family_kind != "gaussian":
        raise FlowError(f"edge '{u}' -> '{v}': a transform needs the gaussian family")
    if kv != "model":
        raise FlowError(f"edge '{u}' -> '{v}': transforms are allowed on edges into models only")
    matrix, offset = transform
    if np.shape(matrix) != (dim, dim) or np.shape(offset) != (dim,):
        raise FlowError(
            f"edge '{u}' -> '{v}': transform needs a {dim}x{dim} matrix and a length-{dim} offset, "
            f"got {np.shape(matrix)} and {np.shape(offset)}"
        )


def producer(graph: nx.DiGraph, curator: object) -> object:
    """The one node whose outputs ``curator`` judges."""
    return next(iter(graph.predecessors(curator)))


def curation_ratio(graph: nx.DiGraph, model: object) -> float:
    """``lambda_i``: the share of ``model``'s training mix that is curated."""
    return float(sum(w for u, _, w in graph.in_edges(model, data="weight") if kind(graph, u) == "curator"))


def real_share(graph: nx.DiGraph, model: object) -> float:
    """The share of ``model``'s training mix drawn straight from real-data sources."""
    return float(sum(w for u, _, w in graph.in_edges(model, data="weight") if kind(graph, u) == "source"))


def set_share(graph: nx.DiGraph, model: object, kinds: tuple[str, ...], value: float) -> None:
    """Scale the in-edges of ``model`` from nodes of ``kinds`` to total ``value``.

    The other in-edges absorb the difference in proportion to their current weights,
    so shares still sum to 1 (raising lambda from 0.5 to 0.6 on a 0.5 real / 0.5
    curated mix gives 0.4 real / 0.6 curated).
    """
    if kind(graph, model) != "model":
        raise FlowError(f"'{model}' is not a model")
    if not 0.0 <= value <= 1.0:
        raise FlowError(f"model '{model}': a share must lie in [0, 1], got {value}")
    inside = [(u, model) for u in graph.predecessors(model) if kind(graph, u) in kinds]
    outside = [(u, model) for u in graph.predecessors(model) if kind(graph, u) not in kinds]
    w_in = sum(graph.edges[e]["weight"] for e in inside)
    w_out = sum(graph.edges[e]["weight"] for e in outside)
    what = "/".join(kinds)
    if value > 0 and w_in <= 0:
        raise FlowError(f"model '{model}': has no {what} inputs whose share could be set to {value}")
    if value < 1 and w_out <= 0:
        raise FlowError(f"model '{model}': only {what} inputs, so their share cannot drop below 1")
    for e in inside:
        graph.edges[e]["weight"] *= value / w_in if w_in > 0 else 0.0
    for e in outside:
        graph.edges[e]["weight"] *= (1.0 - value) / w_out if w_out > 0 else 0.0


def set_curation_ratio(graph: nx.DiGraph, model: object, value: float) -> None:
    """Set ``lambda_i`` of ``model``; its other inputs absorb the change proportionally."""
    set_share(graph, model, ("curator",), value)


def users_reward(graph: nx.DiGraph, model: object):
    """The reward ``model``'s users hold: its ``eval_reward``, else its curator's preference
    (None: the model has no users)."""
    own = graph.nodes[model].get("eval_reward")
    if own is not None:
        return own
    for c in graph.successors(model):
        if kind(graph, c) == "curator":
            return graph.nodes[c]["curator"].preference
    return None
