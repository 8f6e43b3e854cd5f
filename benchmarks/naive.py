"""Naive baselines: the same models written the way Mesa's examples write models.

Every agent's ``step`` does its own numpy work on its own row (no batching across agents),
agents are activated with ``AgentSet.do`` and a Mesa :class:`DataCollector` reads per-agent
attributes. The arithmetic is the engine's (same formulas, same library functions), so on
a small instance the numbers agree with the engine's (see :func:`check_w1`, :func:`check_w2`).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
from mesa import Agent, DataCollector, Model

from ecosystem.core.curation import luce_basis, luce_h
from ecosystem.formats.scenario import Scenario


def _in_edges(g: nx.DiGraph, v: object) -> list[tuple[object, dict]]:
    """In-edges of ``v`` in the engine's order (the order of ``g.edges``)."""
    return [(u, d) for u, d in ((u, g.edges[u, v]) for u in g if g.has_edge(u, v))]


# ----------------------------------------------------------------------------- W1 (population mode)
class _Source(Agent):
    def __init__(self, model: Model, row: np.ndarray) -> None:
        super().__init__(model)
        self.output = row


class _Curator(Agent):
    """Users judging one producer: each round, the producer's row curated by Luce choice."""

    def __init__(self, model: Model, producer: Agent, rho: np.ndarray, K: int, basis=None) -> None:
        super().__init__(model)
        self.producer, self.rho, self.K, self.basis = producer, rho, K, basis
        self.output = None

    def step(self) -> None:
        p = self.producer.output
        q = p * luce_h(p[None], self.rho, self.K, self.basis)[0]
        self.output = q / q.sum()


class _Categorical(Agent):
    """A categorical model: mixes its inputs' rows, refits, measures its alignment and entropy."""

    def __init__(self, model: Model, p: np.ndarray, table: np.ndarray) -> None:
        super().__init__(model)
        self.output, self.table, self.inputs = p.copy(), table, []
        self.alignment = self.entropy = 0.0
        self.measure()

    def step(self) -> None:
        mix = sum(w * agent.output for agent, w in self.inputs)
        self.next = mix / mix.sum()

    def advance(self) -> None:
        self.output = self.next
        self.measure()

    def measure(self) -> None:
        p = self.output
        self.alignment = float(p @ self.table)
        self.entropy = float(-np.sum(p[p > 0] * np.log(p[p > 0])))


class NaiveW1(Model):
    """W1 with one numpy call chain per agent per round.

    ``shared_bases``: curators with the same reward share a precomputed Luce basis (an
    ablation: without it each curator recomputes its basis every round, as a call of
    :func:`ecosystem.core.curation.luce_h` on one row does).
    """

    def __init__(self, scenario: Scenario, shared_bases: bool = False) -> None:
        super().__init__(rng=scenario.seed)
        g, fam = scenario.graph, scenario.family
        kinds = nx.get_node_attributes(g, "kind")
        agents: dict[object, Agent] = {}
        for v in g:
            if kinds[v] == "source":
                agents[v] = _Source(self, np.asarray(g.nodes[v]["moments"], dtype=float))
        for v in g:
            if kinds[v] == "model":
                curator = next(c for c in g.successors(v) if kinds[c] == "curator")
                table = fam.reward_table(g.nodes[curator]["curator"].rewards[0])
                agents[v] = _Categorical(self, np.asarray(g.nodes[v]["moments"], dtype=float), table)
        bases: dict[int, tuple] = {}
        for v in g:
            if kinds[v] == "curator":
                cur = g.nodes[v]["curator"]
                rho = fam.reward_table(cur.rewards[0]) / cur.rule.tau
                basis = bases.setdefault(id(cur), luce_basis(rho)) if shared_bases else None
                agents[v] = _Curator(self, agents[next(iter(g.predecessors(v)))], rho, cur.rule.K, basis)
        for v in g:
            if kinds[v] == "model":
                agents[v].inputs = [(agents[u], d["weight"]) for u, d in _in_edges(g, v)]
        self.names = [v for v in g if kinds[v] == "model"]
        self.by_name = agents
        self.datacollector = DataCollector(agenttype_reporters={_Categorical: {"alignment": "alignment",
                                                                               "entropy": "entropy"}})
        self.datacollector.collect(self)

    def step(self) -> None:
        self.agents_by_type[_Curator].do("step")
        self.agents_by_type[_Categorical].do("step")
        self.agents_by_type[_Categorical].do("advance")
        self.datacollector.collect(self)

    def state(self) -> np.ndarray:
        return np.stack([self.by_name[v].output for v in self.names])


def check_w1(scenario: Scenario, steps: int = 5) -> float:
    """Largest difference between the engine and the naive model (states, alignment, entropy)."""
    engine = scenario.build()
    engine.run(steps)
    worst = 0.0
    for shared in (False, True):
        naive = NaiveW1(scenario, shared_bases=shared)
        for _ in range(steps):
            naive.step()
        frame = engine.agents_frame()
        last = frame[frame.step == steps].set_index("model").loc[naive.names]
        agents = [naive.by_name[v] for v in naive.names]
        worst = max(worst, float(np.max(np.abs(naive.state() - engine.state))),
                    float(np.max(np.abs(last["alignment"].to_numpy() - [a.alignment for a in agents]))),
                    float(np.max(np.abs(last["diversity"].to_numpy() - [a.entropy for a in agents]))))
    return worst


# ----------------------------------------------------------------------------- W2 (sample mode)
class _Gaussian(Agent):
    """A Gaussian model (or a real-data source) in sample mode; draws from its own root each round."""

    def __init__(self, model: Model, row: np.ndarray, dim: int, size: int = 0) -> None:
        super().__init__(model)
        self.row, self.dim, self.size = row.copy(), dim, size
        self.raw: list = []      # (edge position, producer agent, count)
        self.curated: list = []  # (edge position, population, producer agent, count)

    def prepare(self) -> None:
        d = self.dim
        mean = self.row[:d]
        cov = self.row[d:].reshape(d, d) - np.outer(mean, mean)
        vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
        self.mean, self.root = mean, vecs * np.sqrt(np.clip(vals, 0.0, None))

    def draw(self, z: np.ndarray) -> np.ndarray:
        return self.mean + z @ self.root.T

    def allocate(self) -> None:
        """Systematic split of the sample size over the in-edges (one uniform per model)."""
        u = self.model.rng.random()
        weights = np.array([w for w, _ in self.edges])
        hi = np.cumsum(weights * self.size)
        hi[-1] = self.size
        lo = np.r_[0.0, hi[:-1]]
        self.counts = (np.floor(hi + u) - np.floor(lo + u)).astype(np.int64)
        self.parts = [None] * len(self.edges)

    def draw_raw(self) -> None:
        for pos, (_, producer) in enumerate(self.edges):
            if isinstance(producer, _Gaussian):
                self.parts[pos] = producer.draw(self.model.rng.standard_normal((self.counts[pos], self.dim)))

    def candidates(self, population: object) -> None:
        for pos, (_, producer) in enumerate(self.edges):
            if isinstance(producer, _Users) and producer.population is population:
                z = self.model.rng.standard_normal((self.counts[pos] * population.rule.K, self.dim))
                self.parts[pos] = producer.producer.draw(z)

    def pick(self, population: object) -> None:
        for pos, (_, producer) in enumerate(self.edges):
            if isinstance(producer, _Users) and producer.population is population:
                K = population.rule.K
                cand = self.parts[pos]
                scores = population.rewards[0](cand).reshape(-1, K)
                keep = population.rule.choose(scores, self.model.rng)
                self.parts[pos] = cand.reshape(-1, K, self.dim)[np.arange(len(keep)), keep]

    def fit(self) -> None:
        x = np.concatenate(self.parts)
        mean = x.sum(axis=0) / self.size
        second = (x.T @ x) / self.size
        cov = second - np.outer(mean, mean)
        cov = 0.5 * (cov + cov.T)
        self.next = np.concatenate([mean, (cov + np.outer(mean, mean)).ravel()])

    def advance(self) -> None:
        self.row = self.next


class _Users(Agent):
    """Users of one curator population judging one producer."""

    def __init__(self, model: Model, producer: _Gaussian, population: object) -> None:
        super().__init__(model)
        self.producer, self.population = producer, population


class NaiveW2(Model):
    """W2 with per-agent numpy work. The random stream is consumed in the engine's order
    (a uniform per model, raw samples model by model, then per population: candidates and
    Gumbel noise; a population of one user type draws no user), so a small instance
    reproduces the engine's numbers."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(rng=scenario.seed)
        g, fam = scenario.graph, scenario.family
        kinds = nx.get_node_attributes(g, "kind")
        agents: dict[object, Agent] = {}
        for v in g:
            if kinds[v] in ("source", "model"):
                agents[v] = _Gaussian(self, np.asarray(g.nodes[v]["moments"], dtype=float), fam.dim,
                                      int(g.nodes[v].get("sample_size", 1000)) if kinds[v] == "model" else 0)
        self.populations = []
        for v in g:
            if kinds[v] == "curator":
                cur = g.nodes[v]["curator"]
                if all(cur is not p for p in self.populations):
                    self.populations.append(cur)
                agents[v] = _Users(self, agents[next(iter(g.predecessors(v)))], cur)
        self.names = [v for v in g if kinds[v] == "model"]
        self.models = [agents[v] for v in self.names]
        self.producers = [agents[v] for v in g if kinds[v] in ("source", "model")]
        for v, agent in zip(self.names, self.models, strict=True):
            agent.edges = [(d["weight"], agents[u]) for u, d in _in_edges(g, v)]
        self.by_name = agents

    def step(self) -> None:
        for agent in self.producers:
            agent.prepare()
        for phase in ("allocate", "draw_raw"):
            for agent in self.models:
                getattr(agent, phase)()
        for population in self.populations:
            for phase in ("candidates", "pick"):
                for agent in self.models:
                    getattr(agent, phase)(population)
        for phase in ("fit", "advance"):
            for agent in self.models:
                getattr(agent, phase)()

    def state(self) -> np.ndarray:
        return np.stack([a.row for a in self.models])


def check_w2(scenario: Scenario, steps: int = 3) -> float:
    """Largest difference between the engine's and the naive model's moment rows after ``steps`` rounds."""
    engine = scenario.build()
    engine.run(steps)
    naive = NaiveW2(scenario)
    for _ in range(steps):
        naive.step()
    return float(np.max(np.abs(naive.state() - engine.state)))
