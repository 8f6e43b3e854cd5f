"""Named topologies of models, and the template that turns them into data-flow graphs.

Generators return a ``networkx.DiGraph`` over model names in which ``u -> v`` means
"v trains on u's outputs" (undirected generators give both directions). Every random
generator takes ``seed``. :func:`to_dataflow` adds real data, curators and shares.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import networkx as nx

from ecosystem.core import flows
from ecosystem.core.budget import check_topology
from ecosystem.errors import FlowError

WEIGHT_MAX = 1e100
"""The largest edge weight of a topology file (the scenario's magnitude limit)."""

GENERATORS = (
    "complete", "ring", "star", "erdos_renyi", "barabasi_albert", "watts_strogatz",
    "communities", "bipartite", "shared_pool", "graphml", "edgelist",
)


def _oriented(graph: nx.Graph) -> nx.DiGraph:
    """Each edge directed from the lower to the higher node number (older feeds newer)."""
    out = nx.DiGraph()
    out.add_nodes_from(graph.nodes)
    out.add_edges_from((min(u, v), max(u, v)) for u, v in graph.edges)
    return out


def _named(graph: nx.Graph) -> nx.DiGraph:
    out = nx.DiGraph()
    out.add_nodes_from(f"m{v}" for v in graph.nodes)
    out.add_edges_from((f"m{u}", f"m{v}") for u, v in graph.edges)
    if not graph.is_directed():
        out.add_edges_from((f"m{v}", f"m{u}") for u, v in graph.edges)
    return out


def complete(n: int) -> nx.DiGraph:
    """Every model trains on every other model."""
    check_topology(f"topology complete with n = {n}", float(n) * (n - 1), n)
    return _named(nx.complete_graph(n))


def ring(n: int, directed: bool = False) -> nx.DiGraph:
    """Models on a cycle; ``directed``: each trains on its predecessor only."""
    check_topology(f"topology ring with n = {n}", 2.0 * n, n)
    return _named(nx.cycle_graph(n, create_using=nx.DiGraph if directed else nx.Graph))


def star(n: int) -> nx.DiGraph:
    """A hub ``m0`` exchanging data with ``n - 1`` leaves."""
    check_topology(f"topology star with n = {n}", 2.0 * n, n)
    return _named(nx.star_graph(n - 1))


def shared_pool(n: int) -> nx.DiGraph:
    """``n`` models with no direct flows: :func:`to_dataflow` joins them through one pool."""
    check_topology(f"topology shared_pool with n = {n}", 0.0, n)
    return _named(nx.empty_graph(n))


def erdos_renyi(n: int, p: float, seed: int, directed: bool = False) -> nx.DiGraph:
    check_topology(f"topology erdos_renyi with n = {n}, p = {p:g}", float(p) * n * (n - 1), n)
    return _named(nx.erdos_renyi_graph(n, p, seed=seed, directed=directed))


def barabasi_albert(n: int, m: int, seed: int, directed: bool = False) -> nx.DiGraph:
    """Preferential attachment; ``directed``: each newcomer trains on the m models it attached to."""
    check_topology(f"topology barabasi_albert with n = {n}, m = {m}", 2.0 * m * n, n)
    g = nx.barabasi_albert_graph(n, m, seed=seed)
    return _named(_oriented(g) if directed else g)


def watts_strogatz(n: int, k: int, p: float, seed: int) -> nx.DiGraph:
    check_topology(f"topology watts_strogatz with n = {n}, k = {k}", float(n) * k, n)
    return _named(nx.watts_strogatz_graph(n, k, p, seed=seed))


def communities(sizes: list[int], p_in: float, p_out: float, seed: int) -> nx.DiGraph:
    """A stochastic block model: dense inside communities, sparse between them."""
    inside, total = sum(float(s) * s for s in sizes), float(sum(sizes))
    check_topology(f"topology communities with {int(total)} models",
                   p_in * inside + p_out * (total * total - inside), int(total))
    probs = [[p_in if i == j else p_out for j in range(len(sizes))] for i in range(len(sizes))]
    return _named(nx.stochastic_block_model(sizes, probs, seed=seed))


def bipartite(producers: int, consumers: int, p: float, seed: int) -> nx.DiGraph:
    """Producers ``m0..`` feed consumers; each producer -> consumer edge kept with probability p."""
    check_topology(f"topology bipartite with {producers} x {consumers}", float(p) * producers * consumers,
                   producers + consumers)
    return _named(_oriented(nx.bipartite.random_graph(producers, consumers, p, seed=seed)))


def load_file(path: str | Path, fmt: str) -> nx.DiGraph:
    """A model graph from GraphML or a whitespace edge list (``u v [weight]`` per line).

    Edge ``weight`` attributes, if present, are relative shares among a model's inputs: numbers
    in (0, 1e100]. Node names must be printable, at most 100 characters, without ``->``.
    Raises :class:`FlowError` for a bad weight or name; the message gives the edge or node's
    position in the file, never the file's content.
    """
    if fmt == "graphml":
        g = nx.read_graphml(path)
    else:
        g = nx.read_edgelist(path, create_using=nx.DiGraph, nodetype=str, data=(("weight", float),))
    out = nx.DiGraph() if g.is_directed() else nx.DiGraph(g.to_directed())
    if g.is_directed():
        out.add_nodes_from(g.nodes)
        out.add_edges_from(g.edges(data=True))
    for i, v in enumerate(out.nodes):
        name = str(v)
        if not name.strip() or not name.isprintable() or len(name) > 100 or "->" in name:
            raise FlowError(f"node {i + 1} of the file has a bad name (printable, 1 to 100 characters, no '->')")
    for i, (_, _, w) in enumerate(out.edges(data="weight", default=1.0)):
        if (isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w)
                or not 0 < w <= WEIGHT_MAX):
            raise FlowError(f"edge {i + 1} of the file has a bad weight (weights are numbers in (0, {WEIGHT_MAX:g}])")
    return nx.relabel_nodes(out, {v: str(v) for v in out.nodes})


def to_dataflow(
    models: nx.DiGraph,
    graph: nx.DiGraph,
    *,
    model_attrs: Callable[[str], dict],
    make_curator: Callable[[int, str], object] | None,
    curated: set[str],
    source: str | None,
    real_share: float,
    curation_ratio: float,
    include_self: bool = False,
    pool: bool = False,
) -> None:
    """Add ``models`` to the data-flow ``graph`` with real data, curators and shares.

    Each model takes ``real_share`` from ``source``; ``curation_ratio`` (lambda) of
    curated outputs, split over its curated inputs (a model with none gets lambda = 0);
    the rest raw, split over its inputs in proportion to edge ``weight`` (default 1).
    ``include_self`` adds each model's own outputs to its inputs; a model with no
    inputs trains on itself. ``curated`` models get a curator ``users_<name>`` built by
    ``make_curator(position, name)`` (none if nobody consumes its outputs). With
    ``pool``, models write to one shared pool ``pool`` (curated models a share
    ``curation_ratio`` of curated outputs) and read the remaining ``1 - real_share`` from it.
    """
    order = list(models.nodes)
    for v in order:
        graph.add_node(v, **model_attrs(v))
    for i, v in enumerate(order):
        if v in curated:
            graph.add_node(f"users_{v}", kind="curator", curator=make_curator(i, v))
            graph.add_edge(v, f"users_{v}")
    if source is not None and real_share > 0:
        for v in order:
            graph.add_edge(source, v, weight=real_share)
    if pool:
        graph.add_node("pool", kind="pool")
        for v in order:
            lam = curation_ratio if v in curated else 0.0
            if lam > 0:
                graph.add_edge(f"users_{v}", "pool", weight=lam / len(order))
            if lam < 1:
                graph.add_edge(v, "pool", weight=(1 - lam) / len(order))
            if real_share < 1:
                graph.add_edge("pool", v, weight=1 - real_share)
        return
    for v in order:
        inputs = {u: models.edges[u, v].get("weight", 1.0) for u in models.predecessors(v) if u != v}
        if include_self or not inputs:
            inputs[v] = 1.0
        synthetic = 1.0 - real_share
        cur = {u: w for u, w in inputs.items() if u in curated}
        lam = min(curation_ratio, synthetic) if cur else 0.0
        for u, w in cur.items():
            graph.add_edge(f"users_{u}", v, weight=lam * w / sum(cur.values()))
        raw = synthetic - lam
        if raw > 0:
            for u, w in inputs.items():
                graph.add_edge(u, v, weight=raw * w / sum(inputs.values()))
    # a curated model whose outputs nobody consumes keeps no curator
    graph.remove_nodes_from([f"users_{v}" for v in curated if graph.out_degree(f"users_{v}") == 0])


def isolated(graph: nx.DiGraph, model: object) -> nx.DiGraph | None:
    """``model`` alone, the reference of a story: the same node, its real-data inputs (same
    sources, shares and inputs) and its curation ratio curated by its own users, every other
    input replaced by its own outputs. None when it has curated inputs but no curator judges it."""
    g = nx.DiGraph()
    g.add_node(model, **graph.nodes[model])
    real = 0.0
    for s, _, attrs in graph.in_edges(model, data=True):
        if flows.kind(graph, s) == "source":
            g.add_node(s, **graph.nodes[s])
            g.add_edge(s, model, **attrs)
            real += attrs["weight"]
    lam = flows.curation_ratio(graph, model)
    if lam > 0:
        judges = [c for c in graph.successors(model) if flows.kind(graph, c) == "curator"]
        if not judges:
            return None
        users = flows.users_reward(graph, model)
        own = next((c for c in judges if graph.nodes[c]["curator"].preference is users), judges[0])
        g.add_node(own, **graph.nodes[own])
        g.add_edge(model, own)
        g.add_edge(own, model, weight=lam)
    if 1.0 - real - lam > flows.SHARE_TOLERANCE:
        g.add_edge(model, model, weight=1.0 - real - lam)
    return g
