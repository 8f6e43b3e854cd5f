"""One retraining round, batched over all models: generate, curate, mix, refit.

:class:`RoundKernel` compiles a validated data-flow graph into arrays once
(node index, sparse mixing matrices, curator groups) and then runs a round as a few
array operations whatever the number of models:

- *population* mode (infinite samples, exact): moment rows of every node, curated
  rows by the population operator (one call per distinct curator, all its producers
  stacked), training mixtures as one sparse matrix product, MLE fit;
- *sample* mode (finite samples): every training sample is a "slot" (consumer, edge);
  slots are resolved level by level (pools pick a component, curators draw K
  candidates and keep one) with all slots of a level drawn in one call.

Rows ``0..N-1`` of the node arrays are the models, in graph order.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.sparse as sp

from ecosystem.curation import Curator, candidates_per_sample, choose
from ecosystem.families import Categorical, Family
from ecosystem.flows import kind, nodes_of, producer

RETENTIONS = ("replace", "accumulate", "subsample")


@dataclass
class _Edges:
    """Edges into models: source row, consumer model, weight, transform id (-1: none)."""

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    transform: np.ndarray


class RoundKernel:
    """The data-flow graph compiled for batched rounds; see the module docstring."""

    def __init__(self, graph: nx.DiGraph, family: Family) -> None:
        self.family = family
        self.models = nodes_of(graph, "model")
        others = [v for v in graph.nodes if kind(graph, v) != "model"]
        self.nodes = self.models + others
        self.index = {v: i for i, v in enumerate(self.nodes)}
        self.kind = np.array([kind(graph, v) for v in self.nodes])
        n_models, n_nodes = len(self.models), len(self.nodes)

        self.fixed = np.zeros((n_nodes, family.width))
        for v in nodes_of(graph, "source"):
            self.fixed[self.index[v]] = graph.nodes[v]["moments"]

        # edges into models (transformed ones kept apart for population mode)
        rows = [(self.index[u], self.index[v], d["weight"], d.get("transform"))
                for u, v, d in graph.edges(data=True) if kind(graph, v) == "model"]
        self.transforms = [t for *_, t in rows if t is not None]
        tid, k = [], 0
        for *_, t in rows:
            tid.append(k if t is not None else -1)
            k += t is not None
        self.edges = _Edges(
            src=np.array([r[0] for r in rows], dtype=np.int64),
            dst=np.array([r[1] for r in rows], dtype=np.int64),
            weight=np.array([r[2] for r in rows], dtype=float),
            transform=np.array(tid, dtype=np.int64),
        )
        plain = self.edges.transform < 0
        self.mixing = sp.csr_matrix(
            (self.edges.weight[plain], (self.edges.dst[plain], self.edges.src[plain])),
            shape=(n_models, n_nodes),
        )

        # derived nodes (pools, curators) in dependency order
        derived = graph.subgraph(nodes_of(graph, "curator", "pool"))
        self.levels = [
            [self.index[v] for v in level] for level in nx.topological_generations(derived)
        ]
        self.pool_mixing = sp.csr_matrix(
            ([graph.edges[u, v]["weight"] for v in nodes_of(graph, "pool") for u in graph.predecessors(v)],
             ([self.index[v] for v in nodes_of(graph, "pool") for _ in graph.predecessors(v)],
              [self.index[u] for v in nodes_of(graph, "pool") for u in graph.predecessors(v)])),
            shape=(n_nodes, n_nodes),
        )
        self.producer = np.full(n_nodes, -1, dtype=np.int64)
        self.curator_of: dict[int, Curator] = {}
        for v in nodes_of(graph, "curator"):
            self.producer[self.index[v]] = self.index[producer(graph, v)]
            self.curator_of[self.index[v]] = graph.nodes[v]["curator"]
        self._tables: dict[int, np.ndarray] = {}
        self._ancestors: dict[int, list[list[int]]] = {}
        self._graph = graph

    # ----------------------------------------------------------------- shared helpers
    def reward_handles(self, curator: Curator) -> list:
        """Per user type: the reward table ``(n,)`` (categorical) or the reward itself."""
        if not isinstance(self.family, Categorical):
            return list(curator.rewards)
        key = id(curator)
        if key not in self._tables:
            self._tables[key] = np.stack([self.family.reward_table(r) for r in curator.rewards])
        return list(self._tables[key])

    def _groups(self, idx: list[int]) -> dict[int, tuple[Curator, list[int]]]:
        """Curator node indices grouped by their :class:`Curator` object."""
        groups: dict[int, tuple[Curator, list[int]]] = {}
        for c in idx:
            cur = self.curator_of[c]
            groups.setdefault(id(cur), (cur, []))[1].append(c)
        return groups

    def ancestors(self, model: int) -> list[list[int]]:
        """Derived nodes that feed ``model``, by level (for sequential updates)."""
        if model not in self._ancestors:
            feeding = {self.index[v] for v in nx.ancestors(self._graph, self.models[model])}
            self._ancestors[model] = [[v for v in lvl if v in feeding] for lvl in self.levels]
        return self._ancestors[model]

    # ----------------------------------------------------------------- population mode
    def node_moments(self, state: np.ndarray, levels: list[list[int]] | None = None) -> np.ndarray:
        """Moment rows ``(V, k)`` of every node given model rows ``state`` ``(N, k)``."""
        x = self.fixed.copy()
        x[: len(self.models)] = state
        for level in self.levels if levels is None else levels:
            pools = [v for v in level if self.kind[v] == "pool"]
            if pools:
                x[pools] = self.pool_mixing[pools] @ x
            curators = [v for v in level if self.kind[v] == "curator"]
            for cur, members in self._groups(curators).values():
                handles = self.reward_handles(cur)
                tables = np.stack(handles) if isinstance(self.family, Categorical) else None
                x[members] = self.family.curate(cur, x[self.producer[members]], tables)
        return x

    def training_mixture(self, x: np.ndarray, models: np.ndarray | None = None) -> np.ndarray:
        """Training distributions' moment rows ``(N, k)`` (or only ``models``)."""
        mix = self.mixing @ x if models is None else self.mixing[models] @ x
        e = self.edges
        for t in np.flatnonzero(e.transform >= 0):
            if models is not None and e.dst[t] not in models:
                continue
            row = e.dst[t] if models is None else int(np.flatnonzero(models == e.dst[t])[0])
            matrix, offset = self.transforms[e.transform[t]]
            mix[row] += e.weight[t] * self.family.transform(x[e.src[t]][None], matrix, offset)[0]
        return mix

    # ----------------------------------------------------------------- sample mode
    def allocate(self, sizes: np.ndarray, models: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Split each model's sample size over its in-edges by largest remainder.

        Returns ``(edge ids, counts)`` for the edges into ``models`` (all by default).
        """
        e = self.edges
        ids = np.arange(len(e.dst)) if models is None else np.flatnonzero(np.isin(e.dst, models))
        want = e.weight[ids] * sizes[e.dst[ids]]
        base = np.floor(want + 1e-9).astype(np.int64)
        short = sizes - np.bincount(e.dst[ids], weights=base, minlength=len(sizes)).astype(np.int64)
        order = np.lexsort((-(want - base), e.dst[ids]))
        rank = np.arange(len(ids)) - np.searchsorted(e.dst[ids][order], e.dst[ids][order])
        base[order] += rank < short[e.dst[ids][order]]
        return ids, base

    def draw(self, x: np.ndarray, nodes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One sample from each node in ``nodes`` (may repeat); ``x`` holds base rows."""
        out = None
        base = np.isin(self.kind[nodes], ("model", "source"))
        parts = {}
        if base.any():
            parts["base"] = (np.flatnonzero(base), self.family.sample(x, nodes[base], rng))
        pools = np.flatnonzero(self.kind[nodes] == "pool")
        if pools.size:
            parts["pool"] = (pools, self.draw(x, self._pick_component(nodes[pools], rng), rng))
        curated = np.flatnonzero(self.kind[nodes] == "curator")
        for cur, members in self._groups(sorted(set(nodes[curated].tolist()))).values():
            slots = curated[np.isin(nodes[curated], members)]
            parts[id(cur)] = (slots, self._curated_draw(cur, x, self.producer[nodes[slots]], rng))
        for slots, values in parts.values():
            if out is None:
                out = np.empty((len(nodes), *values.shape[1:]), dtype=values.dtype)
            out[slots] = values
        return out

    def _pick_component(self, pools: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        m = self.pool_mixing
        lo, hi = m.indptr[pools], m.indptr[pools + 1]
        cum = np.cumsum(m.data)
        start = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
        target = start + rng.random(len(pools)) * (cum[hi - 1] - start)
        k = np.searchsorted(cum, target, side="right")
        return m.indices[np.clip(k, lo, hi - 1)]

    def _curated_draw(self, cur: Curator, x: np.ndarray, producers: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
        k = candidates_per_sample(cur)
        cand = self.draw(x, np.repeat(producers, k), rng)
        users = rng.choice(len(cur.weights), size=len(producers), p=cur.weights)
        scores = np.empty(len(cand))
        per_slot_user = np.repeat(users, k)
        for u, handle in enumerate(self.reward_handles(cur)):
            mask = per_slot_user == u
            if mask.any():
                scores[mask] = self.family.scores(handle, cand[mask])
        pick = choose(cur, scores.reshape(len(producers), k), rng)
        return cand.reshape((len(producers), k, *cand.shape[1:]))[np.arange(len(producers)), pick]

    def training_samples(self, x: np.ndarray, sizes: np.ndarray, rng: np.random.Generator,
                         models: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw every model's training set: ``(samples, owner model index)``."""
        ids, counts = self.allocate(sizes, models)
        slot_edge = np.repeat(ids, counts)
        samples = self.draw(x, self.edges.src[slot_edge], rng)
        e = self.edges
        for t in np.unique(e.transform[slot_edge]):
            if t < 0:
                continue
            matrix, offset = self.transforms[t]
            mask = e.transform[slot_edge] == t
            samples[mask] = samples[mask] @ np.asarray(matrix).T + offset
        return samples, e.dst[slot_edge]
