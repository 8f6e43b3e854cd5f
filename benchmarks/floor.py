"""Floors: the workloads' rounds as bare numpy/scipy arrays (no Mesa, no metrics, no collection).

:class:`Floor` (W1, population mode): setup (not timed) reads the data-flow graph into a
sparse mixing matrix over the rows ``[models; curated outputs; real data]`` and, per
curator population, its producers and the Luce basis of its scores. A round is then: per
population two matrix products and a normalisation, one sparse product, one normalisation.

:class:`SampleFloor` (W2, sample mode): the same random draws as the engine, in the same
order, with nothing else: a round is the systematic split of each model's sample size
(one uniform per model), the raw samples, per population the K candidates per curated
sample, their rewards and a Gumbel-max pick, then each model's mean and covariance.
"""

from __future__ import annotations

from itertools import pairwise

import networkx as nx
import numpy as np
import scipy.sparse as sp

from ecosystem.core.curation import Luce, luce_basis
from ecosystem.formats.scenario import Scenario


class Floor:
    """The W1 round as array code; :meth:`run` advances ``steps`` rounds."""

    def __init__(self, scenario: Scenario) -> None:
        g: nx.DiGraph = scenario.graph
        fam = scenario.family
        kinds = nx.get_node_attributes(g, "kind")
        models = [v for v in g if kinds[v] == "model"]
        curators = [v for v in g if kinds[v] == "curator"]
        sources = [v for v in g if kinds[v] == "source"]
        row = {v: i for i, v in enumerate(models + curators + sources)}
        n_models, n_rows = len(models), len(row)
        self.x = np.zeros((n_rows, fam.n))
        for s in sources:
            self.x[row[s]] = g.nodes[s]["moments"]
        self.state = np.stack([g.nodes[v]["moments"] for v in models]).astype(float)
        into = [(row[v], row[u], d["weight"]) for u, v, d in g.edges(data=True) if kinds[v] == "model"]
        dst, src, w = (np.array(c) for c in zip(*into, strict=True))
        self.mixing = sp.csr_matrix((w, (dst, src)), shape=(n_models, n_rows))
        groups: dict[int, list] = {}
        for c in curators:
            cur = g.nodes[c]["curator"]
            groups.setdefault(id(cur), [cur, [], []])
            groups[id(cur)][1].append(row[c])
            groups[id(cur)][2].append(row[next(iter(g.predecessors(c)))])
        self.populations = []
        for cur, out_rows, producers in groups.values():
            rho = fam.reward_table(cur.rewards[0]) / cur.rule.tau
            phi, gumbel = luce_basis(rho)
            self.populations.append((np.array(out_rows), np.array(producers), phi, gumbel, cur.rule.K))
        self.flops_per_round = sum(4.0 * len(p) * fam.n * phi.shape[1] for _, p, phi, _, _ in self.populations)
        self.flops_per_round += 2.0 * self.mixing.nnz * fam.n

    def run(self, steps: int) -> np.ndarray:
        """Advance ``steps`` rounds; returns the model rows."""
        x, state = self.x, self.state
        for _ in range(steps):
            x[: len(state)] = state
            for out_rows, producers, phi, gumbel, K in self.populations:
                p = state[producers]
                weight = np.exp((K - 1) * np.log(p @ phi))
                q = p * (K * (weight @ gumbel.T))
                x[out_rows] = q / q.sum(axis=1, keepdims=True)
            mix = self.mixing @ x
            state = mix / mix.sum(axis=1, keepdims=True)
        self.state = state
        return state


class SampleFloor:
    """The W2 round (Gaussian models, Luce curators, sample mode) as array code.

    Setup takes the engine's compiled node and edge order (so that the random stream is
    consumed as the engine consumes it) and precomputes the static part of the sample split.
    """

    def __init__(self, scenario: Scenario) -> None:
        kernel = scenario.build().kernel
        fam = scenario.family
        if (kernel.kind == "pool").any() or (kernel.edges.transform >= 0).any() or any(
                len(c.rewards) != 1 or not isinstance(c.rule, Luce) for c in kernel.curator_of.values()):
            raise ValueError("SampleFloor covers W2's shape only: no pools or edge transforms, "
                             "Luce curators with one reward each")
        self.dim, self.n = fam.dim, len(kernel.models)
        self.rng = np.random.default_rng(scenario.seed)
        self.fixed = kernel.fixed
        self.state = np.stack([scenario.graph.nodes[v]["moments"] for v in kernel.models]).astype(float)
        e = kernel.edges
        order = np.argsort(e.dst, kind="stable")
        self.src, self.dst = e.src[order], e.dst[order]
        size = np.array([scenario.graph.nodes[v].get("sample_size", 1000) for v in kernel.models], dtype=float)
        want = e.weight[order] * size[self.dst]
        first = np.r_[True, self.dst[1:] != self.dst[:-1]]
        hi = np.zeros(len(want))
        for a, b in pairwise(np.r_[np.flatnonzero(first), len(want)]):   # cumulative shares per model
            hi[a:b] = np.cumsum(want[a:b])
            hi[b - 1] = size[self.dst[b - 1]]
        self.hi, self.lo, self.size = hi, np.where(first, 0.0, np.r_[0.0, hi[:-1]]), size
        self.code = np.where(kernel.kind == "curator", 2, 0)
        self.producer = kernel.producer
        self.group_of = np.full(len(kernel.nodes), -1)
        self.groups: list = []
        for c in sorted(kernel.curator_of):
            cur = kernel.curator_of[c]
            gid = next((i for i, g in enumerate(self.groups) if g is cur), None)
            if gid is None:
                gid = len(self.groups)
                self.groups.append(cur)
            self.group_of[c] = gid

    def _draw(self, which: np.ndarray, mean: np.ndarray, root: np.ndarray) -> np.ndarray:
        z = self.rng.standard_normal((which.size, self.dim))
        runs = np.r_[0, np.flatnonzero(which[1:] != which[:-1]) + 1, which.size]
        for a, b in pairwise(runs):
            z[a:b] = z[a:b] @ root[which[a]].T + mean[which[a]]
        return z

    def run(self, steps: int) -> np.ndarray:
        """Advance ``steps`` rounds; returns the model rows ``[mean, E x x^T]``."""
        d, n = self.dim, self.n
        for _ in range(steps):
            x = self.fixed.copy()
            x[:n] = self.state
            mean = x[:, :d]
            cov = x[:, d:].reshape(-1, d, d) - mean[:, :, None] * mean[:, None, :]
            vals, vecs = np.linalg.eigh(cov)
            root = vecs * np.sqrt(np.clip(vals, 0.0, None))[:, None, :]
            u = self.rng.random(n)[self.dst]
            counts = (np.floor(self.hi + u) - np.floor(self.lo + u)).astype(np.int64)
            src = np.repeat(self.src, counts)
            samples = np.empty((src.size, d))
            base = np.flatnonzero(self.code[src] == 0)
            samples[base] = self._draw(src[base], mean, root)
            curated = np.flatnonzero(self.code[src] == 2)
            group = self.group_of[src[curated]]
            for gid in np.flatnonzero(np.bincount(group)):
                cur, slots = self.groups[gid], curated[group == gid]
                K = cur.rule.K
                cand = self._draw(np.repeat(self.producer[src[slots]], K), mean, root)
                scores = cur.rewards[0](cand).reshape(-1, K) / cur.rule.tau
                pick = np.argmax(scores + self.rng.gumbel(size=scores.shape), axis=1)
                samples[slots] = cand.reshape(-1, K, d)[np.arange(len(slots)), pick]
            bounds = np.r_[0, np.cumsum(np.bincount(np.repeat(self.dst, counts), minlength=n))]
            state = np.empty_like(self.state)
            for m, (a, b) in enumerate(pairwise(bounds)):   # samples come grouped by model
                s = samples[a:b]
                state[m, :d] = s.sum(axis=0) / self.size[m]
                state[m, d:] = (s.T @ s).ravel() / self.size[m]
            self.state = state
        return self.state
