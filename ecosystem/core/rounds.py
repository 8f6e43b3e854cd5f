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

from ecosystem.core.curation import Curator, Tilt, candidates_per_sample, choose
from ecosystem.core.families import Categorical, Family
from ecosystem.core.flows import kind, nodes_of, producer

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
        self.levels = [   # in node order: a subgraph iterates its nodes in set (hash) order
            sorted(self.index[v] for v in level) for level in nx.topological_generations(derived)
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
        # per node: 0 drawn directly (model, source), 1 pool, 2 curator; curators' group ids
        self._code = np.select([self.kind == "pool", self.kind == "curator"], [1, 2], 0).astype(np.int8)
        self._group_of = np.full(n_nodes, -1, dtype=np.int64)
        self._group_curator: list[Curator] = []
        for cur, members in self._groups(sorted(self.curator_of)).values():
            self._group_of[members] = len(self._group_curator)
            self._group_curator.append(cur)
        self._tables: dict[int, tuple[Curator, np.ndarray]] = {}
        self._fixed_rows = np.flatnonzero(~np.isin(self.kind, ("model", "curator", "pool")))
        self._buffer: np.ndarray | None = None
        self._ancestors: dict[int, list[list[int]]] = {}
        self._plans: dict[tuple[int, ...], tuple] = {}
        self._graph = graph

    # ----------------------------------------------------------------- shared helpers
    def reward_handles(self, curator: Curator) -> list:
        """Per user type: the reward table ``(n,)`` (categorical) or the reward itself."""
        if not isinstance(self.family, Categorical):
            return list(curator.rewards)
        cached = self._tables.get(id(curator))
        if cached is None or cached[0] is not curator:         # the object is kept: ids stay unique
            cached = (curator, np.stack([self.family.reward_table(r) for r in curator.rewards]))
            self._tables[id(curator)] = cached
        return list(cached[1])

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
    def node_moments(self, state: np.ndarray, levels: list[list[int]] | None = None,
                     reuse: bool = False) -> np.ndarray:
        """Moment rows ``(V, k)`` of every node given model rows ``state`` ``(N, k)``.

        ``reuse``: fill the kernel's own buffer (overwritten by the next such call) instead
        of a new array; for a caller that is done with the rows before the next round.
        """
        if levels is not None:
            x = self.fixed.copy()
        elif reuse:   # every derived row is computed below; the sources' rows never change
            if self._buffer is None:
                self._buffer = self.fixed.copy()
            x = self._buffer
        else:
            x = np.empty_like(self.fixed)
            x[self._fixed_rows] = self.fixed[self._fixed_rows]
        x[: len(self.models)] = state
        for level in self.levels if levels is None else levels:
            pools, groups = self._level_plan(level)
            if pools:
                x[pools] = self.pool_mixing[pools] @ x
            for cur, members, producers in groups:
                handles = self.reward_handles(cur)
                tables = np.stack(handles) if isinstance(self.family, Categorical) else None
                x[members] = self.family.curate(cur, x[producers], tables)
        return x

    def _level_plan(self, level: list[int]) -> tuple[list[int], list[tuple[Curator, list[int], np.ndarray]]]:
        """Pools of a level and its curators grouped by :class:`Curator` (computed once per level)."""
        key = tuple(level)
        plan = self._plans.get(key)
        if plan is None:
            pools = [v for v in level if self.kind[v] == "pool"]
            curators = [v for v in level if self.kind[v] == "curator"]
            groups = [(cur, members, self.producer[members]) for cur, members in self._groups(curators).values()]
            plan = self._plans[key] = (pools, groups)
        return plan

    def training_mixture(self, x: np.ndarray, models: np.ndarray | None = None) -> np.ndarray:
        """Training distributions' moment rows ``(N, k)`` (or only ``models``, sorted indices)."""
        mix = self.mixing @ x if models is None else self.mixing[models] @ x
        e = self.edges
        ids = np.flatnonzero(e.transform >= 0)
        if models is not None:
            ids = ids[np.isin(e.dst[ids], models)]
        if ids.size:                                  # all transformed edges in one batch
            matrices = np.stack([np.asarray(self.transforms[t][0], dtype=float) for t in e.transform[ids]])
            offsets = np.stack([np.asarray(self.transforms[t][1], dtype=float) for t in e.transform[ids]])
            moved = self.family.transform(x[e.src[ids]], matrices, offsets)
            rows = e.dst[ids] if models is None else np.searchsorted(models, e.dst[ids])
            np.add.at(mix, rows, e.weight[ids, None] * moved)
        return mix

    # ----------------------------------------------------------------- sample mode
    def allocate(self, sizes: np.ndarray, rng: np.random.Generator,
                 models: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Split each model's sample size over its in-edges by systematic sampling.

        Counts are ``floor(C_e + u) - floor(C_{e-1} + u)`` with ``C`` the cumulative shares
        times the size and one uniform ``u`` per model: every count is within 1 of
        ``share * size``, its expectation is exactly ``share * size`` and the total is exact.
        Returns ``(edge ids, counts)`` for the edges into ``models`` (all by default).
        """
        e = self.edges
        ids = np.arange(len(e.dst)) if models is None else np.flatnonzero(np.isin(e.dst, models))
        ids = ids[np.argsort(e.dst[ids], kind="stable")]
        dst = e.dst[ids]
        want = e.weight[ids] * sizes[dst]
        first = np.r_[True, dst[1:] != dst[:-1]]
        last = np.r_[dst[1:] != dst[:-1], True]
        cum = np.cumsum(want)
        hi = cum - np.repeat(cum[first] - want[first], np.diff(np.r_[np.flatnonzero(first), len(ids)]))
        hi[last] = sizes[dst[last]]
        lo = np.r_[0.0, hi[:-1]]
        lo[first] = 0.0
        u = rng.random(len(sizes))[dst]
        return ids, (np.floor(hi + u) - np.floor(lo + u)).astype(np.int64)

    def draw(self, x: np.ndarray, nodes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One sample from each node in ``nodes`` (may repeat); ``x`` holds base rows."""
        out = None
        code = self._code[nodes]
        if not code.any():                                   # all drawn directly
            return self.family.sample(x, nodes, rng)
        parts = {}
        base = np.flatnonzero(code == 0)
        if base.size:
            parts["base"] = (base, self.family.sample(x, nodes[base], rng))
        pools = np.flatnonzero(code == 1)
        if pools.size:
            parts["pool"] = (pools, self.draw(x, self._pick_component(nodes[pools], rng), rng))
        curated = np.flatnonzero(code == 2)
        group = self._group_of[nodes[curated]]
        for gid in np.flatnonzero(np.bincount(group)):
            slots = curated[group == gid]
            parts[gid] = (slots, self._curated_draw(self._group_curator[gid], x, self.producer[nodes[slots]], rng))
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

    def _exact_tilt(self, cur: Curator, producers: np.ndarray) -> bool:
        """Tilts are sampled exactly when the producer's distribution is at hand (a model
        or source) and the tilted distribution is known: always for categorical models,
        for Gaussians when every reward is linear or quadratic."""
        if not isinstance(cur.rule, Tilt) or not np.isin(self.kind[producers], ("model", "source")).all():
            return False
        return isinstance(self.family, Categorical) or all(r.quadratic_form() is not None for r in cur.rewards)

    def _curated_draw(self, cur: Curator, x: np.ndarray, producers: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
        if self._exact_tilt(cur, producers):
            users = self._users(cur, len(producers), rng)
            out = None
            for u, reward in enumerate(cur.rewards):
                mask = users == u
                if not mask.any():
                    continue
                rows, which = np.unique(producers[mask], return_inverse=True)
                one = Curator(cur.rule, [reward])
                tables = self.family.reward_table(reward)[None] if isinstance(self.family, Categorical) else None
                values = self.family.sample(self.family.curate(one, x[rows], tables), which, rng)
                if out is None:
                    out = np.empty((len(producers), *values.shape[1:]), dtype=values.dtype)
                out[mask] = values
            return out
        k = candidates_per_sample(cur)
        cand = self.draw(x, np.repeat(producers, k), rng)
        handles = self.reward_handles(cur)
        if len(handles) == 1:
            scores = self.family.scores(handles[0], cand)
        else:
            per_slot_user = np.repeat(self._users(cur, len(producers), rng), k)
            scores = np.empty(len(cand))
            for u, handle in enumerate(handles):
                mask = per_slot_user == u
                if mask.any():
                    scores[mask] = self.family.scores(handle, cand[mask])
        pick = choose(cur, scores.reshape(len(producers), k), rng)
        return cand.reshape((len(producers), k, *cand.shape[1:]))[np.arange(len(producers)), pick]

    @staticmethod
    def _users(cur: Curator, n: int, rng: np.random.Generator) -> np.ndarray:
        """The user type judging each of ``n`` slots, drawn from the population's weights
        (no draw when the population has one type)."""
        if len(cur.weights) == 1:
            return np.zeros(n, dtype=np.int64)
        return rng.choice(len(cur.weights), size=n, p=cur.weights)

    def training_samples(self, x: np.ndarray, sizes: np.ndarray, rng: np.random.Generator,
                         models: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw every model's training set: ``(samples, owner model index)``."""
        ids, counts = self.allocate(sizes, rng, models)
        slot_edge = np.repeat(ids, counts)
        samples = self.draw(x, self.edges.src[slot_edge], rng)
        e = self.edges
        in_use = e.transform[ids[counts > 0]]                       # per edge with slots, not per slot
        for t in np.unique(in_use[in_use >= 0]):
            matrix, offset = self.transforms[t]
            mask = e.transform[slot_edge] == t
            samples[mask] = samples[mask] @ np.asarray(matrix).T + offset
        return samples, e.dst[slot_edge]
