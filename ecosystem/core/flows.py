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

In a conditional family (samples are input -> response pairs) an edge into a model may say
whose inputs its pairs use, ``inputs``: ``"producer"`` (the default: the producer's own
domain, as when the consumer reads the producer's pool), ``"consumer"`` (the consumer's
domain, answered by the producer) or the name of a source (its inputs). Conditional
ecosystems have no pools.
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


INPUTS = ("producer", "consumer")
"""Where the inputs of an edge's training pairs come from, besides a named source."""


def input_node(graph: nx.DiGraph, u: object, v: object) -> object:
    """The node whose domain gives the inputs of the pairs on edge ``u -> v`` (see the module
    docstring): the producer behind ``u`` (a curator's producer), ``v``, or a source."""
    where = graph.edges[u, v].get("inputs") or "producer"
    if where == "consumer":
        return v
    if where != "producer":
        return where
    return producer(graph, u) if kind(graph, u) == "curator" else u


def _check_inputs(graph: nx.DiGraph, u, v, where, family_kind: str) -> None:
    if family_kind not in ("conditional", "conditional_gaussian", "learned"):
        raise FlowError(f"edge '{u}' -> '{v}': inputs needs a conditional family")
    if where not in INPUTS and (where not in graph or kind(graph, where) != "source"):
        raise FlowError(f"edge '{u}' -> '{v}': inputs must be producer, consumer or a source's name, not {where!r}")


def validate(graph: nx.DiGraph, family_kind: str = "categorical", dim: int | None = None) -> None:
    """Raise :class:`FlowError` naming the first problem found in ``graph``."""
    if not nodes_of(graph, "model"):
        raise FlowError("the data-flow graph has no model node")
    if family_kind in ("conditional", "conditional_gaussian") and nodes_of(graph, "pool"):
        raise FlowError(f"pool '{nodes_of(graph, 'pool')[0]}': a conditional ecosystem has no pools "
                        "(give each flow its own edge and inputs)")
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
        if data.get("inputs") is not None:
            _check_inputs(graph, u, v, data["inputs"], family_kind)
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


ABSORB = {"proportional": None, "real": ("source",), "raw": ("model", "pool")}
"""What absorbs a change of curation ratio: the kinds of inputs whose share moves (None: all the
non-curated inputs, in proportion; ``real``: the real data only; ``raw``: the raw synthetic inputs
only, edges from models and pools)."""
ABSORBED_BY = {"real": "real-data", "raw": "raw synthetic"}


def check_absorb(absorb: object) -> str:
    """``absorb`` if it is one of :data:`ABSORB`, else a :class:`FlowError` naming the choices."""
    if absorb not in ABSORB:
        raise FlowError(f"absorb must be one of {', '.join(ABSORB)}, got {absorb!r}")
    return absorb


def _absorbing(graph: nx.DiGraph, model: object, absorb: str) -> tuple[list, float]:
    """The in-edges of ``model`` that absorb a change of its curation ratio (``real``/``raw``) and
    their total share; a :class:`FlowError` if there are none."""
    edges = [(u, model) for u in graph.predecessors(model) if kind(graph, u) in ABSORB[absorb]]
    if not edges:
        raise FlowError(f"model '{model}': has no {ABSORBED_BY[absorb]} inputs to absorb a change of its "
                        f"curation ratio (absorb = {absorb})")
    return edges, sum(graph.edges[e]["weight"] for e in edges)


def curation_range(graph: nx.DiGraph, model: object, absorb: str = "proportional") -> tuple[float, float]:
    """The curation ratios ``model`` can take under ``absorb``: ``[0, 1]`` in proportion, else
    ``[0, lambda + s]`` where ``s`` is the absorbing inputs' share."""
    if check_absorb(absorb) == "proportional":
        return 0.0, 1.0
    return 0.0, min(1.0, curation_ratio(graph, model) + _absorbing(graph, model, absorb)[1])


def set_curation_ratio(graph: nx.DiGraph, model: object, value: float, absorb: str = "proportional") -> None:
    """Set ``lambda_i`` of ``model`` (its curated inputs keep their split); what gives or takes the
    difference is ``absorb``: ``proportional`` (every other input, in proportion to its weight),
    ``real`` (the real-data inputs only) or ``raw`` (the raw synthetic inputs only), each in
    proportion within its kind. Raising lambda from 0.5 to 0.6 on 0.3 real / 0.2 raw / 0.5 curated
    gives 0.24 / 0.16 / 0.6, 0.2 / 0.2 / 0.6 and 0.3 / 0.1 / 0.6."""
    if check_absorb(absorb) == "proportional":
        set_share(graph, model, ("curator",), value)
        return
    if kind(graph, model) != "model":
        raise FlowError(f"'{model}' is not a model")
    if not 0.0 <= value <= 1.0:
        raise FlowError(f"model '{model}': a share must lie in [0, 1], got {value}")
    edges, share = _absorbing(graph, model, absorb)
    curated = [(u, model) for u in graph.predecessors(model) if kind(graph, u) == "curator"]
    lam = sum(graph.edges[e]["weight"] for e in curated)
    if value > 0 and lam <= 0:
        raise FlowError(f"model '{model}': has no curator inputs whose share could be set to {value}")
    left = share - (value - lam)
    if left < -SHARE_TOLERANCE:
        raise FlowError(f"model '{model}': its {ABSORBED_BY[absorb]} share {share:g} cannot give "
                        f"{value - lam:g} to a curation ratio of {value:g} (absorb = {absorb})")
    for e in curated:
        graph.edges[e]["weight"] *= value / lam if lam > 0 else 0.0
    for e in edges:
        w = graph.edges[e]["weight"]
        graph.edges[e]["weight"] = w * max(left, 0.0) / share if share > 0 else max(left, 0.0) / len(edges)


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
