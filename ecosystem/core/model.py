"""``EcosystemModel``: a Mesa model in which one step is one retraining round.

A thin Mesa shell over :mod:`ecosystem.core.rounds`: the round is ``rounds.advance``
on a :class:`~ecosystem.core.rounds.RoundState`; this class places the agents on the
data-flow graph, applies scripted changes, measures (:func:`ecosystem.core.metrics.measure`)
and collects.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np
import pandas as pd
from mesa import Model
from mesa.discrete_space import Cell, Network

from ecosystem.core import events as events_mod
from ecosystem.core import flows, metrics, rounds
from ecosystem.core.agents import CuratorAgent, DataSourceAgent, GenerativeModelAgent
from ecosystem.core.collection import Collector, ecosystem_reporter
from ecosystem.core.families import Family
from ecosystem.core.learned import Learned
from ecosystem.core.metrics import AGENT_COLUMNS, ECOSYSTEM_COLUMNS, METRICS
from ecosystem.core.rewards import Reward
from ecosystem.errors import NumericalError

MODES = ("population", "sample")
ORDERS = ("synchronous", "sequential")
__all__ = ["AGENT_COLUMNS", "ECOSYSTEM_COLUMNS", "METRICS", "MODES", "ORDERS", "EcosystemModel"]


class EcosystemModel(Model):
    """Models and curators as agents on a data-flow graph; ``step()`` = one round.

    Args:
        graph: a data-flow graph (see :mod:`ecosystem.core.flows`); node attributes give
            each model's initial ``moments``, ``sample_size`` (default 1000),
            ``retention`` (``replace``, ``accumulate`` or ``subsample``) and optional
            ``eval_reward``.
        family: the model family shared by all nodes (a learned family is copied for the run,
            so the same family object can build many runs).
        mode: ``population`` (exact, infinite samples) or ``sample`` (finite samples).
        order: ``synchronous`` (all read last round's outputs) or ``sequential``
            (models update in graph order, each reading the newest outputs).
        rewards: named rewards for the cross-alignment table (model x reward).
        reference: the real-data source that drift is measured from (default: the
            first source; without sources, each model's initial distribution).
        rng: seed or numpy Generator; every random draw of the run comes from it.
        builder: turns event values (distributions, rewards, curator tables) into
            objects; given by :class:`~ecosystem.formats.scenario.Scenario` (needed only for
            events that add models or curators, set rewards or real data).
        metrics: what is measured each round (see :data:`METRICS`).
        events: scripted events (:class:`~ecosystem.core.events.EventSpec`) to schedule.
    """

    def __init__(
        self,
        graph: nx.DiGraph,
        family: Family,
        *,
        mode: str = "population",
        order: str = "synchronous",
        rewards: dict[str, Reward] | None = None,
        reference: object | None = None,
        rng: int | np.random.Generator | None = None,
        builder=None,
        metrics: Sequence[str] = METRICS,
        events: Sequence[events_mod.EventSpec] = (),
    ) -> None:
        super().__init__(rng=rng)
        if isinstance(family, Learned):
            if mode != "sample":
                raise ValueError(f"learned models run in sample mode, not {mode!r}")
            family = family.instance(self.rng)   # this run's own copies of the models
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r} (metrics: {', '.join(METRICS)})")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        flows.validate(graph, family.kind, getattr(family, "dim", None))
        self.metrics = frozenset(metrics)
        self.agent_columns = AGENT_COLUMNS + (("alignment_se",) if isinstance(family, Learned) else ())
        """The per-model columns collected each round (learned models add ``alignment_se``)."""
        self.graph, self.family, self.mode, self.order = graph, family, mode, order
        self.rewards = dict(rewards or {})
        self.builder = builder
        self.kernel = rounds.RoundKernel(graph, family)
        self.round_state = rounds.RoundState.start(self._fresh_rows(self.kernel.models))
        self._handed: rounds.RoundState | None = None   # the next round, computed by a replicate batch
        sources = flows.nodes_of(graph, "source")
        self._reference_source = reference if reference is not None else (sources[0] if sources else None)
        self._set_reference()
        self.event_log: list[dict] = []
        self.scripted: list = []
        """Scripted calls registered with Mesa's event scheduler (kept alive here)."""

        skeleton = nx.DiGraph()
        skeleton.add_nodes_from(graph.nodes)
        skeleton.add_edges_from(graph.edges)
        self.grid = Network(skeleton, layout=None, random=self.random)
        self.model_agents = [GenerativeModelAgent(self, m, i) for i, m in enumerate(self.kernel.models)]
        for v in graph.nodes:
            self._new_agent(v)
        self._compile_measures()

        self.datacollector = Collector(
            model_reporters={"step": "steps", **{c: ecosystem_reporter(c) for c in ECOSYSTEM_COLUMNS}},
            agenttype_reporters={GenerativeModelAgent: {"model": "name", **{c: c for c in self.agent_columns}}},
        )
        self._cross_rounds: list[tuple[int, list, np.ndarray]] = []   # (step, model names, (N, R) table)
        self._domain_rounds: list[tuple[int, list, np.ndarray]] = []  # (step, model names, (N, N) table)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            self._measure(self.state)
        self._collect()
        for spec in events:
            events_mod.schedule(self, spec)

    @property
    def state(self) -> np.ndarray:
        """The models' moment rows ``(N, k)`` (:attr:`round_state`'s ``rows``)."""
        return self.round_state.rows

    @property
    def initial(self) -> np.ndarray:
        """The models' initial rows ``(N, k)``."""
        return self.round_state.initial

    # ------------------------------------------------------------------ structure
    def _compile_measures(self) -> None:
        """Each model's users' reward (:attr:`eval_rewards`), where its alignment is read, and
        the curation ratios the collector reports (the graph changes only through recompile())."""
        self.eval_rewards: list[Reward | None] = [flows.users_reward(self.graph, m) for m in self.kernel.models]
        """Model ``i``'s users' reward: its ``eval_reward``, else its curator's preference (None: no users)."""
        self._evaluation = metrics.Evaluation.of(self.eval_rewards, self.rewards)
        self.curation_ratios = np.array([flows.curation_ratio(self.graph, m) for m in self.kernel.models])

    def _fresh_rows(self, names: list, new: list[int] | None = None) -> np.ndarray:
        """Initial rows ``(N, k)`` of models ``names``; learned models of rows ``new`` (default: all)
        get a model object of their own (:meth:`~ecosystem.core.learned.Learned.adopt`)."""
        rows = np.stack([np.asarray(self.graph.nodes[m]["moments"], dtype=float) for m in names])
        if isinstance(self.family, Learned):
            pick = np.arange(len(names)) if new is None else np.asarray(new, dtype=np.int64)
            if pick.size:
                rows[pick] = self.family.adopt(rows[pick], self.rng)
        return rows

    def _set_reference(self) -> None:
        """Drift is measured from the reference source's rows (kept if an event removed it), or
        from each model's initial row ``(N, k)``."""
        ref = self._reference_source
        if ref is None:
            self.reference = self.initial
        elif ref in self.graph:
            self.reference = np.asarray(self.graph.nodes[ref]["moments"], dtype=float)

    def _new_agent(self, v: object) -> None:
        k = flows.kind(self.graph, v)
        if k == "curator":
            CuratorAgent(self, v)
        elif k in ("source", "pool"):
            DataSourceAgent(self, v)

    def index_of(self, model: object) -> int:
        """Row of ``model`` in :attr:`state`."""
        return self.kernel.index[model]

    def agent(self, name: object):
        """The agent standing on data-flow node ``name``."""
        return next(iter(self.grid[name].agents))

    def recompile(self) -> None:
        """Re-read the data-flow graph after any change: shares, curators, nodes added or removed.

        Models keep their state by name; newcomers start from their node's ``moments``;
        agents of removed nodes leave the model, new nodes get agents.
        """
        flows.validate(self.graph, self.family.kind, getattr(self.family, "dim", None))
        events_mod.check_limits(self.graph, self.family.kind)
        old_names, old_index = list(self.kernel.models), dict(self.kernel.index)
        self.kernel = rounds.RoundKernel(self.graph, self.family)
        names = self.kernel.models
        if names != old_names:
            keep = [m for m in names if m in old_index]
            self.round_state = self.round_state.reindexed(
                np.array([old_index[m] for m in keep], dtype=np.int64),
                np.array([names.index(m) for m in keep], dtype=np.int64),
                self._fresh_rows(names, [i for i, m in enumerate(names) if m not in old_index]))
            self._reindex_agents(names)
        self._set_reference()
        self._compile_measures()

    def _reindex_agents(self, names: list) -> None:
        """Carry agents and the grid over to a new list of models."""
        for name in [v for v in self.grid.G.nodes if v not in self.graph]:
            for agent in list(self.grid[name].agents):
                agent.remove()
            self.grid.remove_cell(self.grid[name])
        for name in [v for v in self.graph.nodes if v not in self.grid.G]:
            self.grid.add_cell(Cell(name, random=self.random))
            self._new_agent(name)
        by_name = {a.name: a for a in self.model_agents if a.name in self.graph}
        self.model_agents = [by_name[m] if m in by_name else GenerativeModelAgent(self, m, i)
                             for i, m in enumerate(names)]
        for i, agent in enumerate(self.model_agents):
            agent.index = i
        old, new = set(self.grid.G.edges), set(self.graph.edges)
        for u, v in old - new:
            self.grid.G.remove_edge(u, v)
            self.grid[u].disconnect(self.grid[v])
        for u, v in new - old:
            self.grid.G.add_edge(u, v)
            self.grid[u].connect(self.grid[v], v)

    def set_curation_ratio(self, model: object, value: float, absorb: str = "proportional") -> None:
        """Set ``lambda`` of ``model``; ``absorb`` says what gives or takes the difference
        (:func:`ecosystem.core.flows.set_curation_ratio`: ``proportional``, ``real`` or ``raw``)."""
        self.apply("set_curation_ratio", model, value if absorb == "proportional" else
                   {"ratio": value, "absorb": absorb})

    def set_real_share(self, model: object, value: float) -> None:
        """Set the real-data share of ``model``; its other inputs absorb the change."""
        self.apply("set_real_share", model, value)

    # ------------------------------------------------------------------ scripting
    def apply(self, action: str, target: object, value=None, at: int | None = None) -> None:
        """Apply one event action now (see :mod:`ecosystem.events`) and log it in :attr:`event_log`."""
        old, new = events_mod.Change(self)(action, target, value)
        self.recompile()
        self.log_event(self.steps + 1 if at is None else at, action, target, old, new)

    def log_event(self, at: int, action: str, target: object, old, new) -> None:
        """Record a change: it takes effect from round ``at``."""
        self.event_log.append({"round": at, "action": action, "target": str(target),
                               "old": events_mod.render(old), "new": events_mod.render(new)})

    def schedule(self, action: str, target: object, value=None, *, at: int, every: int | None = None,
                 until: int | None = None) -> None:
        """Apply ``action`` before round ``at`` (and every ``every`` rounds until ``until``)."""
        events_mod.schedule(self, events_mod.EventSpec(at, action, str(target), value, every, until))

    def when(self, condition, action, *, once: bool = True, label: str = "condition") -> None:
        """After each round, if ``condition(model)`` holds, call ``action(model)`` (once by default)."""
        events_mod.when(self, condition, action, once, label)

    def events_frame(self) -> pd.DataFrame:
        """One row per applied event: ``round, action, target, old, new``."""
        return pd.DataFrame(self.event_log, columns=["round", "action", "target", "old", "new"])

    # ------------------------------------------------------------------ dynamics
    def step(self) -> None:
        """One retraining round (:func:`ecosystem.core.rounds.advance`, or the round a
        :class:`~ecosystem.core.replicates.ReplicateBatch` computed for this model); then measure and collect."""
        old, handed, self._handed = self.state, self._handed, None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            self.round_state = handed if handed is not None else rounds.advance(
                self.kernel, self.round_state, mode=self.mode, order=self.order, rng=self.rng)
            self._check_finite()
            self._measure(old)
        self._collect()

    def _check_finite(self) -> None:
        """Raise :class:`NumericalError` if a model's moments left the finite floats this round."""
        bad = ~np.all(np.isfinite(self.state), axis=1)
        if np.any(bad):
            names = [m for m, b in zip(self.kernel.models, bad, strict=False) if b]
            raise NumericalError(f"round {self.steps}: the moments of model {names[0]!r} are not finite "
                                 f"(an overflow: the inputs' scales are too far apart)")

    def _measure(self, old: np.ndarray) -> None:
        self.measures, self.ecosystem = metrics.measure(self.family, self.state, old, self._evaluation,
                                                        self.rewards, self.reference, self.metrics)

    def _collect(self) -> None:
        self.datacollector.collect(self)
        if self.rewards and self.measures["cross"] is not None:  # one array per round (the table is large)
            self._cross_rounds.append((self.steps, self.kernel.models, self.measures["cross"]))   # names: not copied
        if "domain" in self.measures:
            self._domain_rounds.append((self.steps, self.kernel.models, self.measures["domain"]))

    # ------------------------------------------------------------------ results
    def run(self, steps: int, progress: bool = False) -> None:
        """Advance ``steps`` rounds (a progress bar on stderr if ``progress``)."""
        from tqdm.auto import trange

        for _ in trange(steps, disable=not progress, desc="rounds", leave=False):
            self.step()

    def ecosystem_frame(self) -> pd.DataFrame:
        """One row per round: ``step`` and the ecosystem columns."""
        return self.datacollector.get_model_vars_dataframe().reset_index(drop=True)

    def agents_frame(self) -> pd.DataFrame:
        """One row per round per model: ``step``, ``model`` and the agent columns."""
        df = self.datacollector.get_agenttype_vars_dataframe(GenerativeModelAgent).reset_index()
        df = df.rename(columns={"Step": "step"}).drop(columns=["AgentID"])
        df["step"] = df["step"].astype(int)
        return df[["step", "model", *self.agent_columns]]

    def cross_alignment_frame(self) -> pd.DataFrame:
        """One row per round per model, one column per named reward."""
        if not self._cross_rounds:
            return pd.DataFrame(columns=["step", "model", *self.rewards])
        steps, names, tables = zip(*self._cross_rounds, strict=True)
        frame = pd.DataFrame(np.concatenate(tables), columns=list(self.rewards))
        frame.insert(0, "model", [name for block in names for name in block])
        frame.insert(0, "step", np.repeat(steps, [len(block) for block in names]))
        return frame

    def domain_alignment_frame(self) -> pd.DataFrame:
        """Conditional models: one row per round per model per domain (``step, model, domain,
        alignment``): the model's alignment under its users' reward on that model's domain."""
        parts = [pd.DataFrame({"step": step, "model": np.repeat(names, len(names)),
                               "domain": np.tile(names, len(names)), "alignment": table.ravel()})
                 for step, names, table in self._domain_rounds]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["step", "model", "domain", "alignment"])

    def gaussian_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """Means ``(N, d)`` and covariances ``(N, d, d)`` of all models (Gaussian family)."""
        if not hasattr(self.family, "mean_cov"):
            raise TypeError("gaussian_parameters needs the gaussian family")
        return self.family.mean_cov(self.state)
