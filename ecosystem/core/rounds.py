"""One retraining round, batched over all models: generate, curate, mix, refit.

The round is a function of a state: :func:`advance` maps a :class:`RoundState` (model rows,
retention accumulators, reservoirs) to the next one. :class:`RoundKernel` is the
data-flow graph compiled into arrays once (node index, sparse mixing matrices, curator
groups, per-model sample size and retention), so that a round is a few array operations
whatever the number of models:

- *population* mode (infinite samples, exact): moment rows of every node, curated
  rows by the population operator (one call per distinct curator, all its producers
  stacked), training mixtures as one sparse matrix product, MLE fit;
- *sample* mode (finite samples): every training sample is a "slot" (consumer, edge);
  slots are resolved level by level (pools pick a component, curators draw K
  candidates and keep one) with all slots of a level drawn in one call.

Rows ``0..N-1`` of the node arrays are the models, in graph order. The engine
(:class:`~ecosystem.core.model.EcosystemModel`) and the analysis
(:class:`~ecosystem.analysis.stability.RoundMap`) both call :func:`advance`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.sparse as sp

from ecosystem.core.budget import CANDIDATE_CHUNK
from ecosystem.core.conditional import is_conditional
from ecosystem.core.curation import Curator
from ecosystem.core.families import Family, Judges, affine_runs
from ecosystem.core.flows import input_node, kind, nodes_of, producer
from ecosystem.core.learned import Learned
from ecosystem.core.streams import Split, Streams
from ecosystem.errors import FlowError

RETENTIONS = ("replace", "accumulate", "subsample")

Rng = np.random.Generator | Streams
"""A round's random numbers: one generator, or one per block of a batched kernel."""


@dataclass
class _Edges:
    """Edges into models: source row, consumer model, weight, transform id (-1: none) and, for
    conditional families, the node whose domain the pairs' inputs follow."""

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    transform: np.ndarray
    inputs: np.ndarray


class RoundKernel:
    """The data-flow graph compiled for batched rounds; see the module docstring.

    ``blocks`` (a batch of independent runs, :mod:`ecosystem.core.replicates`): the run ("block",
    ``0..B-1``) of every node of ``graph``, which then holds the runs' graphs side by side, each
    run's nodes in its own order and the runs in block order. Rows of different blocks never mix,
    every cumulative sum restarts at a block, and a round's ``rng`` is a
    :class:`~ecosystem.core.streams.Streams` whose generator ``b`` draws block ``b``'s numbers:
    each block's rows are those of its run alone (in sample mode;
    :class:`~ecosystem.core.replicates.ReplicateBatch` checks what else that needs).
    """

    def __init__(self, graph: nx.DiGraph, family: Family, blocks: Mapping[object, int] | None = None) -> None:
        self.family = family
        self.conditional = is_conditional(family)
        """Whether samples are (input, response) pairs drawn input first (decided once per graph)."""
        self.models = nodes_of(graph, "model")
        others = [v for v in graph.nodes if kind(graph, v) != "model"]
        self.nodes = self.models + others
        self.index = {v: i for i, v in enumerate(self.nodes)}
        self.kind = np.array([kind(graph, v) for v in self.nodes])
        n_models, n_nodes = len(self.models), len(self.nodes)
        self.block = None if blocks is None else np.array([blocks[v] for v in self.nodes], dtype=np.int64)
        """The block of every node ``(V,)`` (None: one run)."""
        if self.block is not None and (np.any(np.diff(self.block[:n_models]) < 0)
                                       or np.any(np.diff(self.block[n_models:]) < 0)):
            raise ValueError("a batched graph holds its runs' nodes in block order")
        self._block_nodes = None if self.block is None else np.bincount(self.block)
        self.blocks = 1 if self.block is None else len(self._block_nodes)
        """The number of runs batched (1: one run)."""

        self.fixed = np.zeros((n_nodes, family.width))
        for v in nodes_of(graph, "source"):
            self.fixed[self.index[v]] = graph.nodes[v]["moments"]

        # edges into models (transformed ones kept apart for population mode)
        into_models = [(u, v) for u, v in graph.edges if kind(graph, v) == "model"]
        rows = [(self.index[u], self.index[v], graph.edges[u, v]["weight"], graph.edges[u, v].get("transform"))
                for u, v in into_models]
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
            inputs=np.array([self.index[input_node(graph, u, v)] for u, v in into_models]
                            if self.conditional else [], dtype=np.int64),
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
        data_block = None if self.block is None else np.repeat(self.block, np.diff(self.pool_mixing.indptr))
        self._pool_cum = _cumsum(self.pool_mixing.data, data_block)   # pools' cumulative weights, per block
        self._pool_spans = None if data_block is None else np.searchsorted(data_block, np.arange(self.blocks + 1))
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
        self._judges: dict[int, Judges] = {}
        self._fixed_rows = np.flatnonzero(~np.isin(self.kind, ("model", "curator", "pool")))
        self._direct = np.isin(self.kind, ("model", "source"))   # nodes whose distribution is at hand
        self._split_plan: tuple | None = None                     # allocate()'s static part, all models
        self._sampler: tuple | None = None                        # (rows, family.sampler(rows)) while drawing
        self._moves: tuple[np.ndarray, np.ndarray] | None = None  # edge transforms stacked (sample mode)
        self._buffer: np.ndarray | None = None
        self._ancestors: dict[int, list[list[int]]] = {}
        self._plans: dict[tuple[int, ...], tuple] = {}
        self._graph = graph
        attrs = graph.nodes
        self.sample_size = np.array([int(attrs[m].get("sample_size", 1000)) for m in self.models])
        """Training samples per round of each model ``(N,)`` (sample mode)."""
        self.retention = np.array([attrs[m].get("retention", "replace") for m in self.models])
        """Each model's retention ``(N,)``: ``replace``, ``accumulate`` or ``subsample``."""
        for m, r in zip(self.models, self.retention, strict=True):
            if r not in RETENTIONS:
                raise FlowError(f"model '{m}': retention must be one of {', '.join(RETENTIONS)}, not {r!r}")
        self.retraining_rate = np.array([float(attrs[m].get("retraining_rate", 1.0)) for m in self.models])
        """Each model's retraining rate ``eta`` ``(N,)`` in (0, 1]: the share of the way from its
        current parameters to its refit that a round moves it (THEORY.md section 8; 1: full refit)."""
        for m, eta in zip(self.models, self.retraining_rate, strict=True):
            if not 0 < eta <= 1:
                raise FlowError(f"model '{m}': retraining_rate must be in (0, 1], not {eta!r}")
        if self.block is not None and (self.conditional or isinstance(family, Learned)
                                       or (self.retention == "subsample").any()):
            raise ValueError("a batched kernel draws neither conditional pairs, learned models nor reservoirs")

    # ----------------------------------------------------------------- shared helpers
    def judges(self, curator: Curator) -> Judges:
        """The family's :class:`~ecosystem.core.families.Judges` of ``curator``, made once."""
        judges = self._judges.get(id(curator))
        if judges is None:                  # the curator is kept in it: ids stay unique
            judges = self._judges[id(curator)] = self.family.judges(curator)
        return judges

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
        if reuse and levels is None:   # every derived row is computed below; the sources' rows never change
            x = self.base_rows(state)
        else:
            if levels is not None:
                x = self.fixed.copy()
            else:
                x = np.empty_like(self.fixed)
                x[self._fixed_rows] = self.fixed[self._fixed_rows]
            x[: len(self.models)] = state
        for level in self.levels if levels is None else levels:
            pools, groups = self._level_plan(level)
            if pools:
                x[pools] = self.pool_mixing[pools] @ x
            for cur, members, producers in groups:
                x[members] = self.family.curate(self.judges(cur), x[producers])
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
        e = self.edges
        if self.conditional:                          # pairs: each edge's inputs answered by its producer
            ids = np.arange(len(e.dst)) if models is None else np.flatnonzero(np.isin(e.dst, models))
            pairs = self.family.pair_statistics(x[e.src[ids]], x[e.inputs[ids]])
            mix = np.zeros((len(self.models) if models is None else len(models), x.shape[1]))
            np.add.at(mix, e.dst[ids] if models is None else np.searchsorted(models, e.dst[ids]),
                      e.weight[ids, None] * pairs)
            return mix
        mix = self.mixing @ x if models is None else self.mixing[models] @ x
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
    def allocate(self, sizes: np.ndarray, rng: Rng,
                 models: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Split each model's sample size over its in-edges by systematic sampling.

        Counts are ``floor(C_e + u) - floor(C_{e-1} + u)`` with ``C`` the cumulative shares
        times the size and one uniform ``u`` per model: every count is within 1 of
        ``share * size``, its expectation is exactly ``share * size`` and the total is exact.
        Returns ``(edge ids, counts)`` for the edges into ``models`` (all by default).
        """
        plan = self._split_plan if models is None else None   # all models: the split compiled once
        if plan is None or not np.array_equal(plan[0], sizes):
            plan = self._split(sizes, models)
            if models is None:
                self._split_plan = plan
        _, ids, dst, hi, lo = plan
        u = self._streams(rng, np.arange(len(sizes)) if models is None else models).random(len(sizes))[dst]
        return ids, (np.floor(hi + u) - np.floor(lo + u)).astype(np.int64)

    def _split(self, sizes: np.ndarray, models: np.ndarray | None) -> tuple:
        """The static part of :meth:`allocate`: ``(sizes, edge ids, their models, C_e, C_{e-1})``."""
        e = self.edges
        ids = np.arange(len(e.dst)) if models is None else np.flatnonzero(np.isin(e.dst, models))
        ids = ids[np.argsort(e.dst[ids], kind="stable")]
        dst = e.dst[ids]
        want = e.weight[ids] * sizes[dst]
        first = np.r_[True, dst[1:] != dst[:-1]]
        last = np.r_[dst[1:] != dst[:-1], True]
        cum = _cumsum(want, None if self.block is None else self.block[dst])
        hi = cum - np.repeat(cum[first] - want[first], np.diff(np.r_[np.flatnonzero(first), len(ids)]))
        hi[last] = sizes[dst[last]]
        lo = np.r_[0.0, hi[:-1]]
        lo[first] = 0.0
        return np.array(sizes, copy=True), ids, dst, hi, lo

    def draw(self, x: np.ndarray, nodes: np.ndarray, rng: Rng,
             inputs: np.ndarray | None = None) -> np.ndarray:
        """One sample from each node in ``nodes`` (may repeat); ``x`` holds base rows. ``inputs``
        ``(len(nodes),)`` (conditional families): the input each sample answers."""
        out = None
        code = self._code[nodes]
        if not code.any():                                   # all drawn directly
            return self._base(x, nodes, self._streams(rng, nodes), inputs)
        parts = {}
        base = np.flatnonzero(code == 0)
        if base.size:
            parts["base"] = (base, self._base(x, nodes[base], self._streams(rng, nodes[base]),
                                              None if inputs is None else inputs[base]))
        pools = np.flatnonzero(code == 1)
        if pools.size:
            parts["pool"] = (pools, self.draw(x, self._pick_component(nodes[pools], rng), rng))
        curated = np.flatnonzero(code == 2)
        group = self._group_of[nodes[curated]]
        for gid in np.flatnonzero(np.bincount(group)):
            slots = curated[group == gid]
            parts[gid] = (slots, self._curated_draw(self._group_curator[gid], x, self.producer[nodes[slots]], rng,
                                                    None if inputs is None else inputs[slots]))
        for slots, values in parts.values():
            if out is None:
                out = np.empty((len(nodes), *values.shape[1:]), dtype=values.dtype)
            out[slots] = values
        return out

    def _base(self, x: np.ndarray, nodes: np.ndarray, rng: np.random.Generator | Split,
              inputs: np.ndarray | None) -> np.ndarray:
        """Samples of rows ``nodes`` of ``x`` (models and sources), answering ``inputs`` if given;
        ``rng``: the draw's generator (:meth:`_streams`)."""
        if inputs is not None:
            return self.family.sample_given(x, nodes, inputs, rng)
        if self._sampler is not None and x is self._sampler[0]:   # this round's rows: roots taken once
            return self._sampler[1](nodes, rng)
        return self.family.sample(x, nodes, rng)

    def _streams(self, rng: Rng, nodes: np.ndarray,
                 rows: np.ndarray | None = None) -> np.random.Generator | Split:
        """The generator of a draw with one entry per node of ``nodes``: ``rng`` itself, or in a batch
        its :meth:`~ecosystem.core.streams.Streams.split` by block; ``rows`` ``(B,)``: how many rows
        each block's own draw reads (default: the block's nodes)."""
        if self.block is None:
            return rng
        if not isinstance(rng, Streams):
            raise TypeError("a batched kernel draws from Streams: one generator per block")
        return rng.split(self.block[nodes], self._block_nodes if rows is None else rows)

    def _pick_component(self, pools: np.ndarray, rng: Rng) -> np.ndarray:
        m, cum = self.pool_mixing, self._pool_cum
        lo, hi = m.indptr[pools], m.indptr[pools + 1]
        block = None if self.block is None else self.block[pools]
        start = np.where(lo > (0 if block is None else self._pool_spans[block]), cum[np.maximum(lo - 1, 0)], 0.0)
        target = start + self._streams(rng, pools).random(len(pools)) * (cum[hi - 1] - start)
        if block is None:
            k = np.searchsorted(cum, target, side="right")
        else:   # each block's sums rise from 0: search them alone
            k, spans = np.empty(len(pools), dtype=np.int64), self._pool_spans
            for b in np.unique(block):
                mine = block == b
                k[mine] = spans[b] + np.searchsorted(cum[spans[b]:spans[b + 1]], target[mine], side="right")
        return m.indices[np.clip(k, lo, hi - 1)]

    def _exact_tilt(self, cur: Curator, producers: np.ndarray) -> bool:
        """Tilts are sampled exactly when the producer's distribution is at hand (a model
        or source) and the family knows the tilted distribution."""
        return self.family.tilts_exactly(cur) and bool(self._direct[producers].all())

    def _curated_draw(self, cur: Curator, x: np.ndarray, producers: np.ndarray,
                      rng: Rng, inputs: np.ndarray | None = None) -> np.ndarray:
        if self._exact_tilt(cur, producers):
            users = self._users(cur, len(producers), self._streams(rng, producers))
            out = None
            for u in range(len(cur.rewards)):
                mask = users == u
                if not mask.any():
                    continue
                rows, which = np.unique(producers[mask], return_inverse=True)
                tilted = self.family.curate(self.family.judges(cur.one_user(u)), x[rows])
                per_block = None if self.block is None else np.bincount(self.block[rows], minlength=self.blocks)
                values = self._base(tilted, which, self._streams(rng, rows[which], per_block),   # draws read the
                                    None if inputs is None else inputs[mask])                    # tilted rows
                if out is None:
                    out = np.empty((len(producers), *values.shape[1:]), dtype=values.dtype)
                out[mask] = values
            return out
        per = max(1, CANDIDATE_CHUNK // cur.rule.candidates)
        if len(producers) > per:   # bounded memory: at most CANDIDATE_CHUNK candidates at once
            return np.concatenate([self._pick(cur, x, producers[i:i + per], rng,
                                              None if inputs is None else inputs[i:i + per])
                                   for i in range(0, len(producers), per)])
        return self._pick(cur, x, producers, rng, inputs)

    def _pick(self, cur: Curator, x: np.ndarray, producers: np.ndarray, rng: Rng,
              inputs: np.ndarray | None = None) -> np.ndarray:
        """One curated sample per entry of ``producers``: ``candidates`` draws each (answers to
        the same input, for conditional families), one kept by the rule's sampling choice;
        ``(len(producers), ...)``."""
        k = cur.rule.candidates
        cand = self.draw(x, np.repeat(producers, k), rng, None if inputs is None else np.repeat(inputs, k, axis=0))
        judges = self.judges(cur)
        if len(cur.rewards) == 1:
            scores = self.family.scores(judges, 0, cand)
        else:
            per_slot_user = np.repeat(self._users(cur, len(producers), self._streams(rng, producers)), k)
            scores = np.empty(len(cand))
            for u in range(len(cur.rewards)):
                mask = per_slot_user == u
                if mask.any():
                    scores[mask] = self.family.scores(judges, u, cand[mask])
        pick = cur.rule.choose(scores.reshape(len(producers), k), self._streams(rng, producers))
        return cand.reshape((len(producers), k, *cand.shape[1:]))[np.arange(len(producers)), pick]

    @staticmethod
    def _users(cur: Curator, n: int, rng: np.random.Generator | Split) -> np.ndarray:
        """The user type judging each of ``n`` slots, drawn from the population's weights
        (no draw when the population has one type)."""
        if len(cur.weights) == 1:
            return np.zeros(n, dtype=np.int64)
        return rng.choice(len(cur.weights), size=n, p=cur.weights)

    def base_rows(self, rows: np.ndarray) -> np.ndarray:
        """The sources' rows and the models' ``rows`` ``(N, k)`` in the kernel's buffer ``(V, k)``
        (overwritten by the next call; derived nodes' rows are left as the last call wrote them:
        sample mode never reads them, :meth:`node_moments` recomputes them)."""
        if self._buffer is None:
            self._buffer = self.fixed.copy()
        self._buffer[: len(self.models)] = rows
        return self._buffer

    def training_samples(self, x: np.ndarray, sizes: np.ndarray, rng: Rng,
                         models: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw every model's training set: ``(samples, owner model index)``."""
        ids, counts = self.allocate(sizes, rng, models)
        slot_edge = np.repeat(ids, counts)
        e = self.edges
        inputs = self.family.draw_inputs(x, e.inputs[slot_edge], rng) if self.conditional else None
        make = getattr(self.family, "sampler", None)
        self._sampler = (x, make(x)) if make is not None else None
        try:
            samples = self.draw(x, e.src[slot_edge], rng, inputs)
        finally:
            self._sampler = None
        live = counts > 0
        moved = e.transform[ids[live]]                   # per edge with slots, not per slot
        if (moved >= 0).any():                           # x -> A x + b on each transformed edge's run of slots
            if self._moves is None:
                self._moves = (np.stack([np.asarray(m, dtype=float) for m, _ in self.transforms]),
                               np.stack([np.asarray(b, dtype=float) for _, b in self.transforms]))
            on = moved >= 0
            affine_runs(samples, (np.cumsum(counts) - counts)[live][on], counts[live][on], *self._moves, moved[on])
        return samples, e.dst[slot_edge]


def _cumsum(values: np.ndarray, blocks: np.ndarray | None) -> np.ndarray:
    """Cumulative sums of ``values`` ``(m,)``, restarted where ``blocks`` ``(m,)`` (non-decreasing)
    changes: each block's sums are those of its values alone."""
    if blocks is None or not len(values) or blocks[0] == blocks[-1]:
        return np.cumsum(values)
    cuts = np.flatnonzero(np.diff(blocks)) + 1
    return np.concatenate([np.cumsum(part) for part in np.split(values, cuts)])


# --------------------------------------------------------------------------- the round


@dataclass
class Reservoir:
    """Uniform reservoirs of size ``M_i`` over all data each model has seen (``subsample``
    retention): ``samples`` ``(S, ...)`` kept, ``owner`` ``(S,)`` their model's row and ``seen``
    ``(N,)`` how many samples each model has seen so far."""

    samples: np.ndarray
    owner: np.ndarray
    seen: np.ndarray


@dataclass
class RoundState:
    """Everything a round reads and writes, for ``N`` models with rows of width ``k``.

    ``rows`` ``(N, k)``: the models' moment rows; ``initial`` ``(N, k)``: their first rows
    (what a fit keeps fixed, e.g. a fixed covariance); ``accumulated`` ``(N, k)`` and
    ``accumulated_weight`` ``(N,)``: the summed training statistics and their weight over all
    rounds (``accumulate`` retention); ``reservoir``: the ``subsample`` reservoirs (None
    until a round needs them). :func:`advance` returns a new state and never changes the
    arrays of the one it is given.
    """

    rows: np.ndarray
    initial: np.ndarray
    accumulated: np.ndarray
    accumulated_weight: np.ndarray
    reservoir: Reservoir | None = None

    @classmethod
    def start(cls, rows: np.ndarray, initial: np.ndarray | None = None) -> RoundState:
        """A state with models at ``rows`` ``(N, k)`` and nothing retained; ``initial``
        defaults to a copy of ``rows`` (the state before the first round)."""
        rows = np.asarray(rows, dtype=float)
        return cls(rows, rows.copy() if initial is None else initial, np.zeros_like(rows), np.zeros(len(rows)))

    def reindexed(self, old_rows: np.ndarray, new_rows: np.ndarray, fresh: np.ndarray) -> RoundState:
        """The state for a new list of models: row ``old_rows[j]`` moves to ``new_rows[j]``;
        the other models (newcomers) start at their rows in ``fresh`` ``(N', k)``."""
        def carry(array: np.ndarray, start: np.ndarray) -> np.ndarray:
            out = start.copy()
            out[new_rows] = array[old_rows]
            return out

        n = len(fresh)
        res = self.reservoir
        if res is not None:
            remap = np.full(len(self.rows), -1)
            remap[old_rows] = new_rows
            alive = remap[res.owner] >= 0
            res = Reservoir(res.samples[alive], remap[res.owner[alive]], carry(res.seen, np.zeros(n)))
        return RoundState(carry(self.rows, fresh), carry(self.initial, fresh),
                          carry(self.accumulated, np.zeros_like(fresh)),
                          carry(self.accumulated_weight, np.zeros(n)), res)


def advance(kernel: RoundKernel, state: RoundState, *, mode: str, order: str,
            rng: Rng | None = None) -> RoundState:
    """One retraining round of every model of ``kernel``'s graph: the next state.

    ``mode``: ``population`` (exact; ``rng`` unused) or ``sample`` (finite samples drawn
    from ``rng``); ``order``: ``synchronous`` (every model reads last round's rows) or
    ``sequential`` (models update in graph order, each reading the newest rows). A model with
    retraining rate ``eta < 1`` moves only the share ``eta`` of the way to its refit
    (:func:`_partial`; learned models: :meth:`~ecosystem.core.learned.Learned.refit`).
    """
    new = dataclasses.replace(state)
    n = len(state.rows)
    retains = kernel.retention != "replace" if mode == "population" else kernel.retention == "accumulate"
    if retains.any():                            # accumulators of its own: the given state stays as it was
        new.accumulated, new.accumulated_weight = state.accumulated.copy(), state.accumulated_weight.copy()
    groups = [np.arange(n)] if order == "synchronous" else [np.array([i]) for i in range(n)]
    if order != "synchronous":
        new.rows = state.rows.copy()
    for models in groups:
        fitted = (_population_rows if mode == "population" else _sample_rows)(kernel, new, models, rng)
        if len(models) == n:
            new.rows = fitted                    # a synchronous round replaces the rows array
        else:
            new.rows[models] = fitted
    return new


def _population_rows(kernel: RoundKernel, state: RoundState, models: np.ndarray, rng) -> np.ndarray:
    """Refit rows of ``models``: the exact training mixture, averaged over all rounds for
    models that retain their data, moved by each model's retraining rate."""
    every = len(models) == len(state.rows)
    levels = None if every else kernel.ancestors(int(models[0]))
    x = kernel.node_moments(state.rows, levels, reuse=True)
    mix = kernel.training_mixture(x, None if every else models)
    keep = kernel.retention[models] != "replace"
    if keep.any():
        state.accumulated[models[keep]] += mix[keep]
        state.accumulated_weight[models[keep]] += 1.0
        mix[keep] = state.accumulated[models[keep]] / state.accumulated_weight[models[keep], None]
    old, initial = (state.rows, state.initial) if every else (state.rows[models], state.initial[models])
    return _partial(kernel, models, old, kernel.family.fit(mix, initial, previous=old), initial)


def _sample_rows(kernel: RoundKernel, state: RoundState, models: np.ndarray, rng: Rng) -> np.ndarray:
    """Refit rows of ``models`` on finite training sets: this round's samples (``replace``),
    all rounds' (``accumulate``) or a uniform reservoir of them (``subsample``), moved by each
    model's retraining rate."""
    n, family = len(state.rows), kernel.family
    x = kernel.base_rows(state.rows)
    samples, owner = kernel.training_samples(x, kernel.sample_size, rng, None if len(models) == n else models)
    if isinstance(family, Learned):
        return _learned_rows(kernel, state, models, samples, owner, rng)
    stats = family.empirical(samples, owner, n)[models]
    weight = kernel.sample_size[models].astype(float)
    rows = family.normalise(stats, weight)
    acc = kernel.retention[models] == "accumulate"
    if acc.any():
        state.accumulated[models[acc]] += stats[acc]
        state.accumulated_weight[models[acc]] += weight[acc]
        rows[acc] = family.normalise(state.accumulated[models[acc]], state.accumulated_weight[models[acc]])
    sub = kernel.retention[models] == "subsample"
    if sub.any():
        _update_reservoir(kernel, state, models[sub], samples, owner, rng)
        stats = family.empirical(state.reservoir.samples, state.reservoir.owner, n)[models[sub]]
        rows[sub] = family.normalise(stats, kernel.sample_size[models[sub]].astype(float))
    old, initial = state.rows[models], state.initial[models]
    return _partial(kernel, models, old, family.fit(rows, initial, previous=old), initial)


def _partial(kernel: RoundKernel, models: np.ndarray, old: np.ndarray, fitted: np.ndarray,
             initial: np.ndarray) -> np.ndarray:
    """Rows ``(M, k)`` of ``models`` after partial retraining (THEORY.md section 8): the family's
    free parameters ``theta = (1 - eta) pack(old) + eta pack(fitted)``, unpacked with ``initial``
    ``(M, k)``; the rows of models with ``eta = 1`` are ``fitted``'s, untouched."""
    eta = kernel.retraining_rate[models]
    part = eta < 1
    if part.any():
        fam, share = kernel.family, eta[part, None]
        fitted = fitted.copy()
        fitted[part] = fam.unpack((1 - share) * fam.pack(old[part]) + share * fam.pack(fitted[part]), initial[part])
    return fitted


def _learned_rows(kernel: RoundKernel, state: RoundState, models: np.ndarray, samples: np.ndarray,
                  owner: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Refit learned ``models`` in place (:meth:`Learned.refit`) on this round's samples
    (``replace``), all rounds' (``accumulate``) or a uniform reservoir of them (``subsample``);
    their rows (handles) stay as they are."""
    retention = kernel.retention[models]
    if (retention == "subsample").any():
        _update_reservoir(kernel, state, models[retention == "subsample"], samples, owner, rng)
    if (retention == "accumulate").any():
        res = state.reservoir or _empty_reservoir(samples, len(state.rows))
        mine = np.isin(owner, models[retention == "accumulate"])
        state.reservoir = Reservoir(np.concatenate([res.samples, samples[mine]]),
                                    np.concatenate([res.owner, owner[mine]]), res.seen)
    fresh = _by_owner(samples, owner)
    retained = _by_owner(state.reservoir.samples, state.reservoir.owner) if (retention != "replace").any() else {}
    training = [(fresh if kept == "replace" else retained).get(int(m), samples[:0])
                for m, kept in zip(models, retention, strict=True)]
    kernel.family.refit(state.rows[models], training, rng, kernel.retraining_rate[models])
    return state.rows[models]


def _by_owner(samples: np.ndarray, owner: np.ndarray) -> dict[int, np.ndarray]:
    """``samples`` grouped by ``owner`` (one sort, each group in its original order)."""
    order = np.argsort(owner, kind="stable")
    distinct, starts = np.unique(owner[order], return_index=True)
    return {int(m): samples[idx] for m, idx in zip(distinct, np.split(order, starts[1:]), strict=True)}


def _empty_reservoir(samples: np.ndarray, n: int) -> Reservoir:
    return Reservoir(np.empty((0, *samples.shape[1:]), samples.dtype), np.empty(0, np.int64), np.zeros(n))


def _update_reservoir(kernel: RoundKernel, state: RoundState, models: np.ndarray, samples: np.ndarray,
                      owner: np.ndarray, rng: np.random.Generator) -> None:
    """Update the size-M uniform reservoirs of ``models`` over all data each has seen."""
    n = len(state.rows)
    res = state.reservoir or _empty_reservoir(samples, n)
    kept, kept_owner, seen = res.samples, res.owner, res.seen.copy()
    keep_mask = ~np.isin(kept_owner, models)
    first = seen[models] == 0
    new_parts, new_owner = [kept[keep_mask]], [kept_owner[keep_mask]]
    order = np.argsort(owner, kind="stable")
    samples, owner = samples[order], owner[order]
    start = np.searchsorted(owner, np.arange(n))
    for_model = np.isin(owner, models[first])
    new_parts.append(samples[for_model])
    new_owner.append(owner[for_model])
    old = np.isin(kept_owner, models[~first])
    if old.any():
        o = kept_owner[old]
        size = kernel.sample_size[o]
        replace = rng.random(old.sum()) < size / (seen[o] + size)
        pick = start[o] + rng.integers(0, size)
        values = kept[old].copy()
        values[replace] = samples[pick[replace]]
        new_parts.append(values)
        new_owner.append(o)
    seen[models] += kernel.sample_size[models]
    state.reservoir = Reservoir(np.concatenate(new_parts), np.concatenate(new_owner), seen)
