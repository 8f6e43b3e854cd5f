"""``EcosystemModel``: a Mesa model in which one step is one retraining round."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import networkx as nx
import numpy as np
import pandas as pd
from mesa import DataCollector, Model
from mesa.discrete_space import Cell, Network

from ecosystem.core import events as events_mod
from ecosystem.core import flows, metrics
from ecosystem.core.agents import CuratorAgent, DataSourceAgent, GenerativeModelAgent
from ecosystem.core.families import Family, Gaussian
from ecosystem.core.rewards import Reward
from ecosystem.core.rounds import RETENTIONS, RoundKernel

MODES = ("population", "sample")
ORDERS = ("synchronous", "sequential")
ECOSYSTEM_COLUMNS = (
    "mean_alignment", "min_alignment", "mean_diversity", "pairwise_divergence",
    "mean_drift", "max_change",
)
AGENT_COLUMNS = ("alignment", "diversity", "drift", "change", "curation_ratio")
METRICS = ("alignment", "diversity", "drift", "change", "pairwise_divergence", "cross_alignment")
"""What a run can measure each round (all by default); a metric left out is NaN in its
columns (and in the ecosystem columns made from it), and ``cross_alignment`` is the
model x reward table."""


class EcosystemModel(Model):
    """Models and curators as agents on a data-flow graph; ``step()`` = one round.

    Args:
        graph: a data-flow graph (see :mod:`ecosystem.flows`); node attributes give
            each model's initial ``moments``, ``sample_size`` (default 1000),
            ``retention`` (``replace``, ``accumulate`` or ``subsample``) and optional
            ``eval_reward``.
        family: the model family shared by all nodes.
        mode: ``population`` (exact, infinite samples) or ``sample`` (finite samples).
        order: ``synchronous`` (all read last round's outputs) or ``sequential``
            (models update in graph order, each reading the newest outputs).
        rewards: named rewards for the cross-alignment table (model x reward).
        reference: the real-data source that drift is measured from (default: the
            first source; without sources, each model's initial distribution).
        rng: seed or numpy Generator; every random draw of the run comes from it.
        builder: turns event values (distributions, rewards, curator tables) into
            objects; given by :class:`~ecosystem.formats.scenario.Scenario` (needed only for events
            that add models or curators, set rewards or real data).
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
        metrics: tuple[str, ...] = METRICS,
        events: Sequence[events_mod.EventSpec] = (),
    ) -> None:
        super().__init__(rng=rng)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r} (metrics: {', '.join(METRICS)})")
        self.metrics = frozenset(metrics)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        flows.validate(graph, family.kind, getattr(family, "dim", None))
        self.graph, self.family, self.mode, self.order = graph, family, mode, order
        self.rewards = dict(rewards or {})
        self.builder = builder
        self.kernel = RoundKernel(graph, family)
        names = self.kernel.models
        self.state = np.stack([np.asarray(graph.nodes[m]["moments"], dtype=float) for m in names])
        self.initial = self.state.copy()
        self._accumulated = np.zeros_like(self.state)
        self._accumulated_weight = np.zeros(len(names))
        self._reservoir: tuple[np.ndarray, np.ndarray] | None = None
        self._seen = np.zeros(len(names))
        self._read_model_attributes()
        sources = flows.nodes_of(graph, "source")
        ref = reference if reference is not None else (sources[0] if sources else None)
        self._reference_source = ref
        self.reference = self.initial if ref is None else np.asarray(graph.nodes[ref]["moments"], dtype=float)
        self.event_log: list[dict] = []
        self._scripted: list = []

        skeleton = nx.DiGraph()
        skeleton.add_nodes_from(graph.nodes)
        skeleton.add_edges_from(graph.edges)
        self.grid = Network(skeleton, layout=None, random=self.random)
        self.model_agents = [GenerativeModelAgent(self, m, i) for i, m in enumerate(names)]
        for v in graph.nodes:
            self._new_agent(v)
        self._set_eval_rewards()

        self.datacollector = _Collector(
            model_reporters={"step": "steps", **{c: _ecosystem_reporter(c) for c in ECOSYSTEM_COLUMNS}},
            agenttype_reporters={GenerativeModelAgent: {"model": "name", **{c: c for c in AGENT_COLUMNS}}},
        )
        self._cross_rounds: list[tuple[int, list, np.ndarray]] = []   # (step, model names, (N, R) table)
        self._measure(self.state)
        self._collect()
        for spec in events:
            events_mod.schedule(self, spec)

    # ------------------------------------------------------------------ structure
    def _users_reward(self, model: object) -> Reward | None:
        """Reward that model's users hold: its ``eval_reward``, else its curator's preference."""
        own = self.graph.nodes[model].get("eval_reward")
        if own is not None:
            return own
        for c in self.graph.successors(model):
            if flows.kind(self.graph, c) == "curator":
                return self.graph.nodes[c]["curator"].preference
        return None

    def _set_eval_rewards(self) -> None:
        """Each model's users' reward and, per model, where ``_measure`` reads its alignment:
        the column of that reward in the model x reward table (-1: not a named reward), the
        mask of those models, and the rewards to evaluate apart (set on (re)compiling)."""
        self._eval_rewards = [self._users_reward(m) for m in self.kernel.models]
        column = {id(r): k for k, r in enumerate(self.rewards.values())}
        own = np.array([column.get(id(r), -1) for r in self._eval_rewards], dtype=np.int64)
        rest = [None if k >= 0 else r for r, k in zip(self._eval_rewards, own, strict=True)]
        self._alignment_columns = (own, own >= 0, rest)

    def _new_agent(self, v: object) -> None:
        k = flows.kind(self.graph, v)
        if k == "curator":
            CuratorAgent(self, v)
        elif k in ("source", "pool"):
            DataSourceAgent(self, v)

    def _read_model_attributes(self) -> None:
        names, attr = self.kernel.models, self.graph.nodes
        self.sample_size = np.array([int(attr[m].get("sample_size", 1000)) for m in names])
        self.retention = np.array([attr[m].get("retention", "replace") for m in names])
        for m, r in zip(names, self.retention, strict=True):
            if r not in RETENTIONS:
                raise flows.FlowError(f"model '{m}': retention must be one of {', '.join(RETENTIONS)}, not {r!r}")
        # the collector reads these every round; the graph changes only through recompile()
        self.curation_ratios = np.array([flows.curation_ratio(self.graph, m) for m in names])

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
        old_names, old_index = list(self.kernel.models), dict(self.kernel.index)
        self.kernel = RoundKernel(self.graph, self.family)
        names = self.kernel.models
        if names != old_names:
            self._reindex(old_names, old_index, names)
        self._read_model_attributes()
        if self._reference_source is not None and self._reference_source in self.graph:
            self.reference = np.asarray(self.graph.nodes[self._reference_source]["moments"], dtype=float)
        self._set_eval_rewards()

    def _reindex(self, old_names: list, old_index: dict, names: list) -> None:
        """Carry per-model arrays, agents and the grid over to a new list of models."""
        keep = [m for m in names if m in old_index]
        rows = np.array([old_index[m] for m in keep], dtype=np.int64)
        new_rows = np.array([names.index(m) for m in keep], dtype=np.int64)

        def carry(array: np.ndarray, fresh) -> np.ndarray:
            out = np.stack([fresh(m) for m in names]) if array.ndim > 1 else np.array([fresh(m) for m in names])
            out[new_rows] = array[rows]
            return out

        moments = lambda m: np.asarray(self.graph.nodes[m]["moments"], dtype=float)  # noqa: E731
        self.state = carry(self.state, moments)
        self.initial = carry(self.initial, moments)
        self._accumulated = carry(self._accumulated, lambda m: np.zeros(self.state.shape[1]))
        self._accumulated_weight = carry(self._accumulated_weight, lambda m: 0.0)
        self._seen = carry(self._seen, lambda m: 0.0)
        if self.reference.ndim == 2:
            self.reference = self.initial
        if self._reservoir is not None:
            kept, owner = self._reservoir
            remap = np.full(len(old_names), -1)
            remap[rows] = new_rows
            alive = remap[owner] >= 0
            self._reservoir = (kept[alive], remap[owner[alive]])
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

    def set_curation_ratio(self, model: object, value: float) -> None:
        """Set ``lambda`` of ``model``; its other inputs absorb the change proportionally."""
        self.apply("set_curation_ratio", model, value)

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
        """One retraining round: generate, curate, retrain; then measure and collect."""
        old = self.state   # a synchronous update replaces the state array; a sequential one works on a copy
        if self.order == "synchronous":
            groups = [np.arange(len(self.state))]
        else:
            self.state = old.copy()
            groups = [np.array([i]) for i in range(len(self.state))]
        for models in groups:
            if self.mode == "population":
                self._population_update(models)
            else:
                self._sample_update(models)
        self._measure(old)
        self._collect()

    def _population_update(self, models: np.ndarray) -> None:
        levels = None if len(models) == len(self.state) else self.kernel.ancestors(int(models[0]))
        x = self.kernel.node_moments(self.state, levels, reuse=True)
        mix = self.kernel.training_mixture(x, None if levels is None else models)
        keep = self.retention[models] != "replace"
        self._accumulated[models[keep]] += mix[keep]
        self._accumulated_weight[models[keep]] += 1.0
        mix[keep] = self._accumulated[models[keep]] / self._accumulated_weight[models[keep], None]
        initial = self.initial if len(models) == len(self.state) else self.initial[models]
        self._set_rows(models, self.family.fit(mix, initial))

    def _set_rows(self, models: np.ndarray, rows: np.ndarray) -> None:
        """New rows for ``models``; all of them replace the state array (the old one is kept)."""
        if len(models) == len(self.state):
            self.state = rows
        else:
            self.state[models] = rows

    def _sample_update(self, models: np.ndarray) -> None:
        n = len(self.state)
        x = self.kernel.fixed.copy()
        x[:n] = self.state
        samples, owner = self.kernel.training_samples(
            x, self.sample_size, self.rng, None if len(models) == n else models
        )
        stats = self.family.empirical(samples, owner, n)[models]
        weight = self.sample_size[models].astype(float)
        rows = self.family.normalise(stats, weight)
        acc = self.retention[models] == "accumulate"
        if acc.any():
            self._accumulated[models[acc]] += stats[acc]
            self._accumulated_weight[models[acc]] += weight[acc]
            rows[acc] = self.family.normalise(
                self._accumulated[models[acc]], self._accumulated_weight[models[acc]]
            )
        sub = self.retention[models] == "subsample"
        if sub.any():
            rows[sub] = self._subsample(models[sub], samples, owner)
        self._set_rows(models, self.family.fit(rows, self.initial[models]))

    def _subsample(self, models: np.ndarray, samples: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """Fit rows from a size-M uniform reservoir over all data each model has seen."""
        n = len(self.state)
        if self._reservoir is None:
            self._reservoir = (np.empty((0, *samples.shape[1:]), samples.dtype), np.empty(0, np.int64))
            self._seen = np.zeros(n)
        kept, kept_owner = self._reservoir
        keep_mask = ~np.isin(kept_owner, models)
        first = self._seen[models] == 0
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
            size = self.sample_size[o]
            replace = self.rng.random(old.sum()) < size / (self._seen[o] + size)
            pick = start[o] + self.rng.integers(0, size)
            values = kept[old].copy()
            values[replace] = samples[pick[replace]]
            new_parts.append(values)
            new_owner.append(o)
        self._seen[models] += self.sample_size[models]
        kept, kept_owner = np.concatenate(new_parts), np.concatenate(new_owner)
        self._reservoir = (kept, kept_owner)
        stats = self.family.empirical(kept, kept_owner, n)[models]
        return self.family.normalise(stats, self.sample_size[models].astype(float))

    # ------------------------------------------------------------------ measurement
    def _measure(self, old: np.ndarray) -> None:
        fam, rows, want = self.family, self.state, self.metrics
        missing = np.full(len(rows), np.nan)
        named = list(self.rewards.values())
        cross = metrics.cross_alignment(fam, rows, named) if "cross_alignment" in want else None
        m = {"alignment": missing, "diversity": missing, "drift": missing, "change": missing, "cross": cross}
        if "alignment" in want and cross is None:
            m["alignment"] = metrics.alignment(fam, rows, self._eval_rewards)
        elif "alignment" in want:
            # a model whose users hold a named reward: its alignment is a column of the cross table
            own, from_cross, rest = self._alignment_columns
            m["alignment"] = metrics.alignment(fam, rows, rest) if not from_cross.all() else missing.copy()
            m["alignment"][from_cross] = cross[from_cross, own[from_cross]]
        if "diversity" in want:
            m.update(metrics.diversity(fam, rows))
        if "drift" in want:
            m["drift"] = metrics.drift(fam, rows, self.reference, m["diversity"] if "diversity" in want else None)
        if "change" in want:
            m["change"] = metrics.relative_change(rows, old)
        defined = m["alignment"][~np.isnan(m["alignment"])]
        self.ecosystem = {
            "mean_alignment": float(defined.mean()) if defined.size else float("nan"),
            "min_alignment": float(defined.min()) if defined.size else float("nan"),
            "mean_diversity": float(m["diversity"].mean()),
            "pairwise_divergence": (metrics.pairwise_divergence(fam, rows) if "pairwise_divergence" in want
                                    else float("nan")),
            "mean_drift": float(m["drift"].mean()),
            "max_change": float(m["change"].max()),
        }
        self.measures = m

    def _collect(self) -> None:
        self.datacollector.collect(self)
        if self.rewards and self.measures["cross"] is not None:  # one array per round (the table is large)
            self._cross_rounds.append((self.steps, self.kernel.models, self.measures["cross"]))   # names: not copied

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
        return df[["step", "model", *AGENT_COLUMNS]]

    def cross_alignment_frame(self) -> pd.DataFrame:
        """One row per round per model, one column per named reward."""
        if not self._cross_rounds:
            return pd.DataFrame(columns=["step", "model", *self.rewards])
        steps, names, tables = zip(*self._cross_rounds, strict=True)
        frame = pd.DataFrame(np.concatenate(tables), columns=list(self.rewards))
        frame.insert(0, "model", [name for block in names for name in block])
        frame.insert(0, "step", np.repeat(steps, [len(block) for block in names]))
        return frame

    def gaussian_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """Means ``(N, d)`` and covariances ``(N, d, d)`` of all models (Gaussian family)."""
        if not isinstance(self.family, Gaussian):
            raise TypeError("gaussian_parameters needs the gaussian family")
        return self.family.mean_cov(self.state)


class _Collector(DataCollector):
    """Mesa's :class:`DataCollector`; while the model agents' reporters are the default ones,
    their records are read from the model's metric arrays in one pass (the same records
    as calling each agent's properties, without thousands of Python calls per round)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._default = dict(self.agenttype_reporters.get(GenerativeModelAgent, {}))

    def _record_agenttype(self, model, agent_type):
        if (agent_type is not GenerativeModelAgent or self.agenttype_reporters[agent_type] != self._default
                or agent_type not in model.agent_types):
            return super()._record_agenttype(model, agent_type)
        agents = list(model.agents_by_type[agent_type])
        rows = np.fromiter((a.index for a in agents), dtype=np.int64, count=len(agents))
        columns = [(model.curation_ratios if c == "curation_ratio" else model.measures[c])[rows].tolist()
                   for c in AGENT_COLUMNS]
        return zip(repeat(model.time), (a.unique_id for a in agents), (a.name for a in agents), *columns,
                   strict=False)


def _ecosystem_reporter(column: str):
    def report(model: EcosystemModel) -> float:
        return model.ecosystem[column]

    report.__name__ = column
    return report
