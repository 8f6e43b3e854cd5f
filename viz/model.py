"""``VizModel``: an :class:`~ecosystem.core.model.EcosystemModel` built from a scenario and knobs.

Mesa's ``SolaraViz`` re-creates the model class with keyword parameters (its ``model_params``),
so this class turns a scenario name and the page's knobs into a data-flow graph. A knob left at
:data:`FILE` keeps the scenario file's value. A combination that cannot be built (an invalid
scenario, shares that cannot add up, a rule without ``K``, ...) does not raise: the model keeps
the message in :attr:`VizModel.error`, draws nothing and does not step, and the page shows the
message instead of a traceback. :func:`knob_problem` checks a combination without building it
(for the page to explain it before Reset).

This module does not import solara: the model can be built and tested without the viz extra.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from mesa import Model

from ecosystem.core import flows
from ecosystem.core.agents import CuratorAgent
from ecosystem.core.curation import Curator, Tilt
from ecosystem.core.model import EcosystemModel
from ecosystem.errors import EcosystemError
from ecosystem.formats.names import resolve
from ecosystem.formats.scenario import Scenario, ScenarioError, default_name, parse, read_toml, with_overrides

FILE = "file"
"""Knob value meaning "as in the scenario file"."""
TOPOLOGIES = ("complete", "ring", "star", "erdos_renyi", "barabasi_albert", "watts_strogatz", "shared_pool")
SIZES = (2, 3, 4, 6, 8, 10, 20, 50, 100, 200)
SHARES = tuple(round(0.1 * i, 1) for i in range(11))
KS = (1, 2, 3, 4, 6, 8, 16, 32)
TAUS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
MODES = ("population", "sample")
ABSORBS = tuple(flows.ABSORB)
"""What absorbs the curation ratio knob's change on an explicit graph (``file``: ``proportional``)."""
TOPOLOGY_DEFAULTS = {"erdos_renyi": {"p": 0.1}, "barabasi_albert": {"m": 2}, "watts_strogatz": {"k": 4, "p": 0.1}}
"""Generator parameters used when the page switches a scenario to a topology it does not set."""
LAYOUT_SEED = 0


def _number(name: str, value: Any, cast: type, lo: float | None = None, hi: float | None = None) -> Any:
    """``value`` as ``cast`` (or None for :data:`FILE`); raises ScenarioError with a readable message."""
    if value is None or value == FILE or value == "":
        return None
    try:
        out = cast(float(value)) if cast is int and not isinstance(value, str) else cast(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"{name} must be {'an integer' if cast is int else 'a number'}, got {value!r}") from None
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        raise ScenarioError(f"{name} must lie in [{lo}, {hi}], got {out}")
    return out


class VizModel(EcosystemModel):
    """An ecosystem built from scenario file ``scenario_name`` with the page's knobs applied.

    Args:
        scenario_name: a file name in ``scenarios/`` (without ``.toml``) or a path.
        topology: a generator name (replaces the file's models and flows: curators cycle
            over the file's rewards) or :data:`FILE`.
        n: number of models of the topology, or :data:`FILE`.
        curation_ratio, real_share: shares of every curated model's training mix.
        absorb: on an explicit graph with only the curation ratio set, what absorbs its change
            (:data:`ecosystem.core.flows.ABSORB`; :data:`FILE`: ``proportional``). In a topology the
            curation ratio is a template key: the real share stays, the raw outputs take the rest.
        K, tau: the curators' rule parameters.
        mode: ``population`` or ``sample``, or :data:`FILE`.
        seed: the run's seed (an integer >= 0, or :data:`FILE`).
    """

    def __init__(self, scenario_name: str = "default", topology: str = FILE, n: Any = FILE,
                 curation_ratio: Any = FILE, K: Any = FILE, tau: Any = FILE, real_share: Any = FILE,
                 mode: str = FILE, seed: Any = FILE, absorb: str = FILE) -> None:
        self.knobs = {"scenario_name": scenario_name, "topology": topology, "n": n,
                      "curation_ratio": curation_ratio, "K": K, "tau": tau, "real_share": real_share,
                      "mode": mode, "seed": seed, "absorb": absorb}
        self.error: str | None = None
        try:
            scenario, graph, mode_, seed_, self.topology = _build(**self.knobs)
            args = scenario.model_args(seed=seed_, mode=mode_, graph=graph)
        except (EcosystemError, ValueError) as err:
            Model.__init__(self, rng=0)
            self.error, self.running = str(err), False
            self.title, self.graph, self.model_agents = name_of_knob(scenario_name), nx.DiGraph(), []
            self.topology = None
            self.history: dict[str, list] = {}
            return
        super().__init__(**args)
        self.title, self.seed = scenario.name, seed_
        self.layout = relayout(graph)
        self.colour_bound = alignment_scale(self)
        self.history = {k: [] for k in ("alignment", "diversity", "mean_alignment", "min_alignment",
                                        "mean_diversity", "pairwise_divergence")}
        self._record()
        self._analysis: object | None = None

    def step(self) -> None:
        """One round (nothing for a model that could not be built)."""
        if self.error:
            self.running = False
            return
        super().step()
        self._record()

    def _record(self) -> None:
        h, m, e = self.history, self.measures, self.ecosystem
        names = list(self.kernel.models)                  # models may appear or leave (scripted events)
        h["alignment"].append(dict(zip(names, m["alignment"].tolist(), strict=True)))
        h["diversity"].append(dict(zip(names, m["diversity"].tolist(), strict=True)))
        for key in ("mean_alignment", "min_alignment", "mean_diversity", "pairwise_divergence"):
            h[key].append(e[key])

    def per_model(self, key: str, rounds: int) -> tuple[list, np.ndarray]:
        """``(names, values)`` of ``alignment`` or ``diversity`` over the first ``rounds`` rounds:
        every model ever present, in order of appearance, NaN while absent."""
        rows = self.history[key][:rounds]
        names = list(dict.fromkeys(name for row in rows for name in row))
        return names, np.array([[row.get(n, np.nan) for n in names] for row in rows], dtype=float)

    @property
    def alignment_by_name(self) -> dict:
        """Current alignment of every model, by node name."""
        return dict(zip(self.kernel.models, self.measures["alignment"], strict=True)) if not self.error else {}

    @property
    def absorb(self) -> str:
        """What absorbs a change of curation ratio here (the analysis and policies use it too)."""
        return "proportional" if self.knobs["absorb"] in (FILE, "", None) else self.knobs["absorb"]

    def heading(self) -> str:
        """The page title: scenario, topology and size."""
        if self.error:
            return f"{self.title}: not built"
        shape = f"{self.topology} topology" if self.topology else "explicit graph"
        return f"{self.title} · {shape} · {len(self.model_agents)} models"

    def effective(self) -> dict[str, str]:
        """The built ecosystem's value of every knob (what ``file`` means for this scenario), as text."""
        if self.error:
            return {}
        curated = [a for a in self.model_agents if a.curation_ratio > 0]
        curators = self.agents_by_type[CuratorAgent] if CuratorAgent in self.agents_by_type else []
        return {"scenario_name": self.title, "topology": self.topology or "explicit graph",
                "n": str(len(self.model_agents)),
                "curation_ratio": value_range(a.curation_ratio for a in curated),
                "real_share": value_range(a.real_share for a in self.model_agents),
                "absorb": "raw (topology template)" if self.topology else "proportional",
                "K": value_range(c.K for c in curators if c.K), "tau": value_range(c.tau for c in curators),
                "mode": self.mode, "seed": str(self.seed)}

    def describe(self) -> str:
        """One line: what was built (scenario, size, mode, seed)."""
        if self.error:
            return f"{self.title}: not built"
        n_cur = len(flows.nodes_of(self.graph, "curator"))
        return (f"{self.title}: {len(self.model_agents)} models, {n_cur} curators, "
                f"{self.family.kind}, {self.mode} mode, seed {self.seed}")


def value_range(values: Iterable[float]) -> str:
    """``values`` as one number, a range ``lo–hi`` or ``—`` (none), 3 significant digits."""
    values = sorted(set(round(float(v), 6) for v in values))
    if not values:
        return "—"
    return f"{values[0]:.3g}" if len(values) == 1 else f"{values[0]:.3g}–{values[-1]:.3g}"


def name_of_knob(scenario_name: str) -> str:
    """The scenario's name for messages: a shipped name as given, a path as its file name."""
    return scenario_name.rsplit("/", 1)[-1].removesuffix(".toml") if scenario_name.endswith(".toml") else scenario_name


def knob_problem(**knobs: Any) -> str | None:
    """Why the knobs cannot be built (one message without paths), or None when they can."""
    try:
        _build(**knobs)
    except (EcosystemError, ValueError) as err:
        return str(err)
    return None


def page_overrides(path: Path) -> dict:
    """The command line's ``KEY=VALUE`` overrides (``$ECOSYSTEM_VIZ_OVERRIDES``, JSON) if ``path`` is
    the scenario the page was started with, else none."""
    given = os.environ.get("ECOSYSTEM_VIZ_OVERRIDES")
    start = os.environ.get("ECOSYSTEM_VIZ_SCENARIO")
    if not given or start is None or Path(start).resolve() != Path(path).resolve():
        return {}
    return json.loads(given)


def _build(scenario_name: str, topology: str = FILE, n: Any = FILE, curation_ratio: Any = FILE, K: Any = FILE,
           tau: Any = FILE, real_share: Any = FILE, mode: str = FILE, seed: Any = FILE,
           absorb: str = FILE) -> tuple[Scenario, nx.DiGraph, str, int, str | None]:
    """Parse the scenario with the knobs applied: ``(scenario, graph, mode, seed, topology kind or None)``.
    Messages name the knobs, never the file's path."""
    path = resolve(scenario_name)
    data = with_overrides(read_toml(path), page_overrides(path))
    size = _number("size n", n, int, 1, 10_000)
    lam = _number("curation ratio", curation_ratio, float, 0.0, 1.0)
    real = _number("real-data share", real_share, float, 0.0, 1.0)
    k = _number("K", K, int, 1, 10_000)
    t = _number("tau", tau, float, 1e-9, None)
    seed_ = _number("seed", seed, int, 0, 2**32 - 1)
    if mode not in (FILE, *MODES):
        raise ScenarioError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if topology not in (FILE, *TOPOLOGIES):
        raise ScenarioError(f"topology must be one of {', '.join(TOPOLOGIES)}, got {topology!r}")
    if absorb not in (FILE, *ABSORBS):
        raise ScenarioError(f"absorb must be one of {', '.join(ABSORBS)}, got {absorb!r}")
    topo = data.get("topology")
    if topology != FILE:
        topo = _as_topology(data, topology)
    if absorb != FILE and (topo is not None or lam is None or real is not None):
        raise ScenarioError("absorb: applies to an explicit graph with only the curation ratio set "
                            "(a topology's raw outputs, or its raw inputs with both shares set, take the rest)")
    if topo is not None:          # knobs become template keys: the remainder of a mix goes to raw outputs
        if size is not None:
            if "n" not in topo and "n" not in _params(topo.get("kind")):
                raise ScenarioError(f"the {topo.get('kind')} topology has no size n to set")
            topo["n"] = size
        for key, value in (("curation_ratio", lam), ("real_share", real)):
            if value is not None:
                topo[key] = value
        _check_topology_shares(topo, lam, real)
        cur = topo.setdefault("curator", {})
        for key, value in (("K", k), ("tau", t)):
            if value is not None:
                if key == "K" and cur.get("rule") == "tilt":
                    raise ScenarioError("K: the tilt rule (K -> infinity) has no K")
                if key == "tau" and cur.get("rule") == "best_of_k":
                    raise ScenarioError("tau: the best-of-K rule has no tau")
                cur[key] = value
    elif size is not None:
        raise ScenarioError(f"size n: scenario {default_name(path)!r} lists its models explicitly; "
                            "pick a topology to set n")
    try:
        scenario = parse(data, origin=str(path), default_name=default_name(path))
    except ScenarioError as err:
        raise ScenarioError(str(err).replace(f"{path}: ", "").replace(str(path.parent) + "/", "")) from None
    graph = scenario.graph.copy()
    if topo is None:               # explicit graph: set the shares and rules of the curated models
        _apply_explicit(graph, lam, real, k, t, absorb)
    return (scenario, graph, scenario.mode if mode == FILE else mode, scenario.seed if seed_ is None else seed_,
            None if topo is None else str(topo.get("kind")))


def _check_topology_shares(topo: dict, lam: float | None, real: float | None) -> None:
    """Curation ratio + real-data share of a topology must not exceed 1 (named as knobs; a value the
    page did not set is marked "knob at file")."""
    shares = [(what, topo.get(key, 0.0), knob is None) for what, key, knob in
              (("curation ratio λ", "curation_ratio", lam), ("real-data share", "real_share", real))]
    total = sum(float(v) for _, v, _ in shares)
    if total > 1 + flows.SHARE_TOLERANCE:
        terms = " + ".join(f"{what} {float(v):g}" + (" (knob at file)" if from_file else "")
                           for what, v, from_file in shares)
        raise ScenarioError(f"{terms} = {total:g} exceeds 1: lower one of them")


def _params(kind: Any) -> set[str]:
    from ecosystem.formats.scenario import TOPOLOGY_PARAMS

    return TOPOLOGY_PARAMS.get(kind, set())


def _as_topology(data: dict, kind: str) -> dict:
    """Replace the scenario's graph by topology ``kind``, keeping its space, rewards and sources."""
    old = data.get("topology") or {}
    rewards = list(data.get("rewards", {}))
    if not rewards:
        raise ScenarioError("the scenario defines no rewards for the topology's curators")
    for key in ("models", "curators", "pools", "flows", "figures"):   # the story's models go too
        data.pop(key, None)
    curator = dict(old.get("curator", {}))
    if "reward" not in curator and "users" not in curator:
        curator.setdefault("rewards", rewards)
    topo = {"kind": kind, "n": old.get("n", 6), "curator": curator,
            "real_share": old.get("real_share", 0.3 if data.get("sources") else 0.0),
            "curation_ratio": old.get("curation_ratio", 0.4), **TOPOLOGY_DEFAULTS.get(kind, {})}
    for key in ("model", "include_self", "source", "seed"):
        if key in old:
            topo[key] = old[key]
    if kind == "star" and topo["n"] < 2:
        topo["n"] = 2
    data["topology"] = topo
    return topo


def _apply_explicit(graph: nx.DiGraph, lam: float | None, real: float | None, K: int | None,
                    tau: float | None, absorb: str = FILE) -> None:
    """Knobs on an explicit data-flow graph: every curated model's shares (a curation ratio alone
    absorbed by ``absorb``), every curator's rule."""
    for m in flows.nodes_of(graph, "model"):
        if flows.curation_ratio(graph, m) > 0 and absorb in (FILE, "proportional"):
            set_shares(graph, m, real, lam)
        elif flows.curation_ratio(graph, m) > 0:
            try:
                flows.set_curation_ratio(graph, m, lam, absorb)
            except flows.FlowError as err:
                raise ScenarioError(f"curation ratio λ {lam:g} with absorb = {absorb}: {err}") from None
    for c in flows.nodes_of(graph, "curator"):
        cur: Curator = graph.nodes[c]["curator"]
        changes = {key: value for key, value in (("K", K), ("tau", tau)) if value is not None}
        if changes:
            try:
                graph.nodes[c]["curator"] = cur.with_rule(**changes)
            except ValueError as err:
                raise ScenarioError(f"curator {c!r}: {err}") from None


def set_shares(graph: nx.DiGraph, model: object, real: float | None, lam: float | None) -> None:
    """Set the real-data share and/or curation ratio of ``model``; its other inputs take the rest."""
    if real is None and lam is None:
        return
    groups = {"source": [], "curator": [], "other": []}
    for u in graph.predecessors(model):
        k = flows.kind(graph, u)
        groups[k if k in ("source", "curator") else "other"].append(u)
    weight = {g: sum(graph.edges[u, model]["weight"] for u in us) for g, us in groups.items()}
    target = {"source": real, "curator": lam}
    fixed = {g: v for g, v in target.items() if v is not None}
    free = [g for g in groups if g not in fixed]
    rest = 1.0 - sum(fixed.values())
    if rest < -flows.SHARE_TOLERANCE:
        raise ScenarioError(f"model {model!r}: real-data share + curation ratio = {1 - rest:g} exceeds 1")
    free_weight = sum(weight[g] for g in free)
    if rest > flows.SHARE_TOLERANCE and free_weight <= 0:
        what = " + ".join(f"{'real-data share' if g == 'source' else 'curation ratio'} {v:g}" for g, v in fixed.items())
        raise ScenarioError(f"model {model!r}: {what} leave {rest:g} of its mix to other inputs, but it has none")
    if real and not groups["source"]:
        raise ScenarioError(f"model {model!r}: real-data share {real:g} but it has no real-data input")
    for g, us in groups.items():
        share = fixed[g] if g in fixed else (rest * weight[g] / free_weight if free_weight > 0 else 0.0)
        for u in us:
            graph.edges[u, model]["weight"] = share * graph.edges[u, model]["weight"] / weight[g] if weight[g] > 0 \
                else share / len(us)


def relayout(graph: nx.DiGraph, old: dict | None = None) -> dict:
    """A seeded spring layout; nodes placed in ``old`` stay where they were."""
    kept = {v: p for v, p in (old or {}).items() if v in graph}
    if not kept:
        return nx.spring_layout(graph, seed=LAYOUT_SEED)
    if len(kept) == graph.number_of_nodes():
        return kept
    return nx.spring_layout(graph, pos=kept, fixed=list(kept), seed=LAYOUT_SEED)


def alignment_scale(model: EcosystemModel, samples: int = 512) -> float:
    """Half-width of the fixed colour scale of alignment: half the largest standard deviation
    of a model's users' reward under its initial distribution, rounded up to 1, 2 or 5 x 10^k.

    The scale is fixed for a built model, so colours compare across rounds; it is centred on 0
    (aligned vs. misaligned with the model's own users)."""
    fam, rewards = model.family, model.eval_rewards
    drawn = fam.sample(model.initial, np.repeat(np.arange(len(rewards)), samples), np.random.default_rng(0))
    def spread_of(i: int, reward) -> float:                  # scored by the family: tabular rewards too
        return float(np.std(fam.scores(fam.judges(Curator(Tilt(1.0), [reward])), 0,
                                       drawn[i * samples:(i + 1) * samples])))

    spread = max((spread_of(i, r) for i, r in enumerate(rewards) if r is not None), default=0.0)
    return nice_ceil(0.5 * spread) if spread > 0 else 1.0


def nice_ceil(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= ``x`` (``x`` > 0)."""
    k = 10.0 ** np.floor(np.log10(x))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * k >= x * (1 - 1e-12):
            return float(m * k)
    return float(10 * k)
