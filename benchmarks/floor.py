"""W1's floor: the same population-mode round as bare numpy/scipy arrays (no Mesa, no collection).

Setup (not timed) reads the data-flow graph into a sparse mixing matrix over the rows
``[models; curated outputs; real data]`` and, per curator population, its producers and
the Luce basis of its scores. A round is then: per population two matrix products and
a normalisation, one sparse product, one normalisation.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import scipy.sparse as sp

from ecosystem.curation import GRID_STEP, luce_basis
from ecosystem.scenario import Scenario


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
                q = p * ((K * GRID_STEP) * (weight @ gumbel.T))
                x[out_rows] = q / q.sum(axis=1, keepdims=True)
            mix = self.mixing @ x
            state = mix / mix.sum(axis=1, keepdims=True)
        self.state = state
        return state
