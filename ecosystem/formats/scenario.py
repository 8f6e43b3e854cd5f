"""Scenario files (TOML): load, validate and build an :class:`EcosystemModel`.

The reference of every key, with defaults, is ``scenarios/REFERENCE.md``. Files are
data: they are parsed with :mod:`tomllib` and checked key by key; nothing in them is
ever evaluated. Every problem raises :class:`ScenarioError` whose message names the
file, the key and the bad value.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from ecosystem import learned as registry
from ecosystem.core import budget, events, flows, topologies
from ecosystem.core.conditional import ConditionalCategorical, is_conditional
from ecosystem.core.conditional_gaussian import ConditionalGaussian
from ecosystem.core.curation import BestOfK, Curator, Luce, Tilt
from ecosystem.core.families import Categorical, Family, Gaussian
from ecosystem.core.learned import Learned
from ecosystem.core.model import METRICS, MODES, ORDERS, EcosystemModel
from ecosystem.core.rewards import Ball, Linear, Quadratic, Reward, Tabular
from ecosystem.core.rounds import RETENTIONS
from ecosystem.errors import ScenarioError, show
from ecosystem.formats import conditional_space, learned_space, mixture
from ecosystem.formats.names import resolve
from ecosystem.formats.section import Section

TOP_KEYS = {
    "name", "description", "seed", "steps", "mode", "order", "reference", "events", "metrics",
    "space", "rewards", "sources", "models", "curators", "pools", "flows", "topology", "figures", "defaults",
}
MODEL_DEFAULTS = ("sample_size", "retention", "retraining_rate", "eval_reward")
CURATOR_DEFAULTS = ("rule", "K", "tau", "candidates")


K_MAX, SAMPLE_SIZE_MAX = events.K_MAX, events.SAMPLE_SIZE_MAX


@dataclass
class Scenario:
    """A validated scenario: the data-flow graph, family and run settings."""

    name: str
    description: str
    graph: nx.DiGraph
    family: Family
    rewards: dict[str, Reward]
    seed: int = 0
    steps: int = 100
    mode: str = "population"
    order: str = "synchronous"
    reference: str | None = None
    source: str = field(default="<python>")
    events: list[events.EventSpec] = field(default_factory=list)
    builder: Builder | None = None
    metrics: tuple[str, ...] = METRICS
    contrast: tuple[str, ...] = ()
    """Models the run's story figure sets side by side (``[figures] contrast``); none: no story figure."""
    alone: bool = True
    """Whether the story figure shows each contrasted model run alone (``[figures] alone``)."""

    def model_args(self, *, seed: int | None = None, mode: str | None = None,
                   graph: nx.DiGraph | None = None) -> dict[str, Any]:
        """The keyword arguments of :class:`EcosystemModel` for this scenario: the one place a
        scenario becomes a model (``build``, ``mesa.batch_run``'s model and the browser page's
        use it). ``graph``: a changed copy of :attr:`graph` to build instead (default: a copy)."""
        if isinstance(self.family, Learned) and (mode or self.mode) != "sample":
            raise ScenarioError("learned models run in sample mode only; population mode (and analyze and "
                                "optimize, which need it) takes the categorical or gaussian family")
        return dict(graph=self.graph.copy() if graph is None else graph, family=self.family,
                    mode=mode or self.mode, order=self.order, rewards=self.rewards, reference=self.reference,
                    rng=self.seed if seed is None else seed, builder=self.builder, metrics=self.metrics,
                    events=self.events)

    def build(self, *, seed: int | None = None, mode: str | None = None) -> EcosystemModel:
        """A fresh :class:`EcosystemModel` with the file's events scheduled (the scenario is reusable)."""
        return EcosystemModel(**self.model_args(seed=seed, mode=mode))


class Builder:
    """Turns tables from events (distributions, models, curators, reward names) into objects,
    with the same checks and messages as the scenario file."""

    def __init__(self, family: Family, rewards: dict[str, Reward], sources: dict[str, np.ndarray],
                 origin: str) -> None:
        self.family, self.rewards, self.sources, self.origin = family, rewards, sources, origin

    def _section(self, spec: Any, name: str) -> Section:
        return Section(spec, f"event {name!r}", self.origin)

    def model_attrs(self, spec: dict, name: str, moments: np.ndarray | None = None) -> dict[str, Any]:
        """Model node attributes; ``moments`` (a copy of another model) replaces ``init``."""
        return _model_attrs(self._section(spec, name), self.family, self.rewards, self.sources, moments=moments)

    def curator(self, spec: dict, name: str) -> Curator:
        return _make_curator(self._section(spec, name), self.rewards)

    def distribution(self, spec: Any, name: str) -> np.ndarray:
        if isinstance(self.family, Learned):   # a run's models live in its own copy of the family
            raise ScenarioError(f"{self.origin}: event {name!r}: events cannot give learned models new data "
                                "or distributions (name a source of the file instead)")
        return _distribution(self._section(spec, name), self.family)

    def reward(self, name: Any) -> Reward:
        if not isinstance(name, str) or name not in self.rewards:
            raise ScenarioError(f"{self.origin}: unknown reward {name!r} (defined: {', '.join(self.rewards)})")
        return self.rewards[name]


def read_toml(path: str | Path, error: type[Exception] | None = None, what: str = "scenario") -> dict:
    """The parsed TOML file; unreadable or invalid files raise ``error`` (default
    :class:`ScenarioError`) with a one-line message naming the file."""
    error = error or ScenarioError
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise error(f"no {what} file {str(path)!r}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path}: not valid TOML: {err}") from None
    except RecursionError:
        raise error(f"{path}: not readable TOML: arrays or tables nested too deeply") from None
    except ValueError as err:                # e.g. an integer literal of more than 4300 digits
        raise error(f"{path}: not valid TOML: {str(err).splitlines()[0][:80]}") from None
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror}") from None


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read, validate and compile a scenario: a path (a ``Path``, or a text ending in ``.toml``)
    or a shipped name (``"default"``, ``"stories/newcomer"``; see :mod:`~ecosystem.formats.names`).
    ``overrides`` maps dotted keys to values (:func:`with_overrides`)."""
    path = path if isinstance(path, Path) else resolve(path)
    data = with_overrides(read_toml(path), overrides or {})
    return parse(data, origin=str(path), default_name=default_name(path))


def with_overrides(data: dict, overrides: dict[str, Any]) -> dict:
    """A copy of the scenario dict ``data`` with the dotted ``overrides`` set (``topology.n = 12``).

    Setting ``topology.kind`` drops the generator parameters of ``data`` that the new kind
    does not take (e.g. ``n`` when switching from ``ring`` to ``communities``).
    """
    data = copy.deepcopy(data)
    kind = overrides.get("topology.kind")
    if isinstance(kind, str) and isinstance(data.get("topology"), dict):
        every = set().union(*TOPOLOGY_PARAMS.values())
        keep = TOPOLOGY_PARAMS.get(kind, every)
        for key in list(data["topology"]):
            if key in every and key not in keep and f"topology.{key}" not in overrides:
                del data["topology"][key]
    for key, value in overrides.items():
        set_dotted(data, key, copy.deepcopy(value))
    return data


def _item(items: list, part: str, key: str) -> dict:
    """Item ``part`` (a number from 0) of the list ``items``, for the override ``key``."""
    if not part.isdigit() or int(part) >= len(items) or not isinstance(items[int(part)], dict):
        raise ScenarioError(f"override {key}: '{part}' is not the number of one of its {len(items)} tables "
                            f"(0..{len(items) - 1})")
    return items[int(part)]


def default_name(path: Path) -> str:
    """A scenario's name when the file gives none: the file's stem, or a story's folder name."""
    return path.parent.name if path.name == "scenario.toml" else path.stem


def set_dotted(data: dict, key: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``key = "a.b"``, creating tables as needed; a number
    indexes a list (``flows.2.weight``: the third ``[[flows]]`` table's weight)."""
    *parents, last = key.split(".")
    if not all(part.strip() for part in key.split(".")):
        raise ScenarioError(f"override {key!r}: not a dotted key (e.g. topology.n)")
    for part in parents:
        if isinstance(data, list):
            data = _item(data, part, key)
            continue
        data = data.setdefault(part, {})
        if not isinstance(data, dict | list):
            raise ScenarioError(f"override {key}: '{part}' is not a table")
    if isinstance(data, list):
        raise ScenarioError(f"override {key}: give a key of list item {last}, e.g. {key}.weight")
    data[last] = value


def parse(data: dict, origin: str = "<scenario>", default_name: str = "scenario") -> Scenario:
    """Validate a scenario given as a dict (the parsed TOML)."""
    top = Section(data, "", origin)
    top.only(TOP_KEYS)
    data = _with_defaults(top)
    top = Section(data, "", origin)
    family = _family(top.sub("space"))
    rewards = {name: _reward(Section(spec, f"rewards.{name}", origin), family)
               for name, spec in top.sub("rewards").data.items()}
    sources = {name: _distribution(Section(spec, f"sources.{name}", origin), family)
               for name, spec in top.sub("sources").data.items()}
    graph = nx.DiGraph()
    for name, moments in sources.items():
        graph.add_node(name, kind="source", moments=moments)
    if "topology" in data:
        for key in ("pools", "flows"):
            if key in data:
                top.fail(f"give either [topology] or explicit [{key}], not both", key)
        _topology(top.sub("topology"), graph, family, rewards, sources, _seed(top))
        _generated_overrides(top, graph, family, rewards, sources)
    else:
        _explicit(top, graph, family, rewards, sources)
    mode = top.text("mode", "population", MODES)
    if isinstance(family, Learned) and mode != "sample":
        top.fail('learned models need mode = "sample"', "mode")
    reference = data.get("reference")
    if reference is not None and reference not in sources:
        top.fail(f"unknown source {reference!r} (sources: {', '.join(sources) or 'none'})", "reference")
    try:
        flows.validate(graph, family.kind, getattr(family, "dim", None))
        events.check_limits(graph, family.kind)
    except flows.FlowError as err:
        raise ScenarioError(f"{origin}: {err}") from None
    steps = top.number("steps", 100, lo=0, integer=True)
    budget.check_scenario(graph, family, mode, steps, origin)   # memory, before the events' copy and the run
    builder = Builder(family, rewards, sources, origin)
    specs = _events(top, steps)
    try:
        events.dry_run(graph, builder, specs, steps, family.kind, getattr(family, "dim", None),
                       check=lambda changed: budget.check_scenario(changed, family, mode, steps, "after it"))
    except events.EventError as err:
        raise ScenarioError(f"{origin}: {err}") from None
    return Scenario(
        name=safe_name(top, top.text("name", default_name)), description=top.text("description", ""),
        graph=graph, family=family, rewards=rewards, seed=_seed(top), steps=steps, mode=mode,
        order=top.text("order", "synchronous", ORDERS), reference=reference, source=origin,
        events=specs, builder=builder, metrics=_metrics(top), contrast=_contrast(top.sub("figures"), graph),
        alone=top.sub("figures").flag("alone", True),
    )


def _with_defaults(top: Section) -> dict:
    """The scenario with ``[defaults] model`` and ``curator`` filled into every model and curator
    table (explicit, ``users`` of a mixture, and the topology's templates) that does not give the
    key itself; the defaults are checked on their own first."""
    sec = top.sub("defaults")
    sec.only({"model", "curator"})
    model, curator = sec.sub("model"), sec.sub("curator")
    model.only(set(MODEL_DEFAULTS))
    curator.only(set(CURATOR_DEFAULTS))
    if "sample_size" in model.data:
        model.number("sample_size", lo=1, hi=SAMPLE_SIZE_MAX, integer=True)
    if "retention" in model.data:
        model.text("retention", None, RETENTIONS)
    if "retraining_rate" in model.data:
        model.number("retraining_rate", lo=0, hi=1, strict_lo=True)
    if "eval_reward" in model.data and model.data["eval_reward"] not in top.data.get("rewards", {}):
        model.fail(f"unknown reward {model.data['eval_reward']!r}", "eval_reward")
    if curator.data:
        _make_curator(Section({**curator.data, "reward": "_"}, curator.where, curator.origin), {"_": None})
    data = copy.deepcopy(top.data)
    data.pop("defaults", None)

    def fill(table: Any, defaults: dict) -> None:
        if isinstance(table, dict):
            for key, value in defaults.items():
                table.setdefault(key, copy.deepcopy(value))

    for spec in data.get("models", {}).values() if isinstance(data.get("models"), dict) else ():
        fill(spec, model.data)
        fill(spec.get("users") if isinstance(spec, dict) else None, curator.data)
    for spec in data.get("curators", {}).values() if isinstance(data.get("curators"), dict) else ():
        fill(spec, curator.data)
    if isinstance(data.get("topology"), dict):
        fill(data["topology"].setdefault("model", {}), model.data)
        fill(data["topology"].setdefault("curator", {}), curator.data)
    return data


def _contrast(sec: Section, graph: nx.DiGraph) -> tuple[str, ...]:
    """``[figures] contrast``: two or more models of the graph, each once."""
    sec.only({"contrast", "alone"})
    value = sec.data.get("contrast", [])
    if isinstance(value, list) and len(value) == 1:
        sec.fail(f"must be a list of two or more model names, got {show(value)}", "contrast")
    return _names(sec, "contrast", value, [str(v) for v in flows.nodes_of(graph, "model")], "model")


def _names(sec: Section, key: str, value: Any, known: list[str], what: str) -> tuple[str, ...]:
    """``value``: a list of names from ``known``, each once (``what``: the kind of name)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        sec.fail(f"must be a list of {what} names, got {show(value)}", key)
    unknown = [v for v in value if v not in known]
    if unknown:
        sec.fail(f"unknown {what} {unknown[0]!r} ({what}s: {', '.join(known[:8])})", key)
    if len(set(value)) != len(value):
        sec.fail(f"names a {what} twice: {show(value)}", key)
    return tuple(value)


def safe_name(sec: Section, name: str) -> str:
    """``name`` if it is a safe file name (results go to ``results/<name>/``): no path
    separator, not ``.`` or ``..``, no control character, at most 100 characters."""
    bad = (not name.strip() or name in (".", "..") or any(c in name for c in "/\\:")
           or any(ord(c) < 32 for c in name) or len(name) > 100)
    if bad:
        sec.fail(f"must be a plain file name (no '/', '\\', ':', '..', control characters; "
                 f"1 to 100 characters), got {show(name)}", "name")
    return name


def _metrics(top: Section) -> tuple[str, ...]:
    return _names(top, "metrics", top.data.get("metrics", list(METRICS)), list(METRICS), "metric")


def _events(top: Section, steps: int) -> list[events.EventSpec]:
    raw = top.data.get("events", [])
    if not isinstance(raw, list):
        top.fail("must be a list of [[events]] tables", "events")
    specs = []
    for i, entry in enumerate(raw):
        sec = Section(entry, f"events[{i}]", top.origin)
        sec.only({"round", "action", "target", "value", "every", "until"})
        at = sec.number("round", None, lo=1, integer=True)
        if at > steps:
            sec.fail(f"round {at} is beyond the run's {steps} steps", "round")
        action = sec.text("action", None, tuple(events.ACTIONS))
        target = sec.text("target")
        every = sec.number("every", 1, lo=1, integer=True) if "every" in sec.data else None
        until = sec.number("until", steps, lo=at, hi=steps, integer=True) if "until" in sec.data else None
        if until is not None and every is None:
            sec.fail("needs every (until only bounds a recurring event)", "until")
        specs.append(events.EventSpec(at, action, target, sec.data.get("value"), every, until))
    return specs


def _seed(top: Section) -> int:
    return top.number("seed", 0, lo=0, integer=True)


def _family(sec: Section) -> Family:
    kind = sec.text("family", "categorical",
                    ("categorical", "gaussian", "conditional", "conditional_gaussian", "learned"))
    if kind == "learned":
        return learned_space.family(sec)
    if kind == "conditional":
        return conditional_space.family(sec)
    if kind == "conditional_gaussian":
        return conditional_space.gaussian_family(sec)
    if kind == "gaussian":
        sec.only({"family", "dim", "covariance", "unbiased"})
        dim = sec.number("dim", 1, lo=1, hi=64, integer=True)
        return Gaussian(dim, sec.text("covariance", "full", ("full", "diag", "fixed")),
                        unbiased=sec.flag("unbiased", False))
    sec.only({"family", "grid", "n", "coords"})
    given = [k for k in ("grid", "n", "coords") if k in sec.data]
    if len(given) != 1:
        sec.fail("give exactly one of grid, n or coords for a categorical space")
    if given[0] == "n":
        return Categorical(np.arange(sec.number("n", lo=2, hi=1e6, integer=True), dtype=float))
    if given[0] == "coords":
        coords = sec.array("coords")
        if coords.ndim not in (1, 2) or len(coords) < 2:
            sec.fail("must be a list of at least 2 points (numbers or equal-length lists)", "coords")
        return Categorical(coords)
    grid = sec.sub("grid")
    grid.only({"start", "stop", "num"})
    start, stop = np.atleast_1d(grid.array("start")), np.atleast_1d(grid.array("stop"))
    num = np.atleast_1d(grid.array("num"))
    if not (start.shape == stop.shape == num.shape) or start.ndim != 1 or len(start) > 3:
        grid.fail("start, stop and num must be numbers or equal-length lists (1 to 3 axes)")
    if np.any(num != np.round(num)) or np.any(num < 2) or np.prod(num) > 1_000_000:
        grid.fail(f"num must be integers >= 2 per axis and at most 1e6 points in all, got {num.tolist()}", "num")
    axes = [np.linspace(a, b, int(k)) for a, b, k in zip(start, stop, num, strict=True)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    return Categorical(mesh)


def _dim(family: Family) -> int:
    return family.dim if isinstance(family, Gaussian | Learned | ConditionalGaussian) else family.coords.shape[1]


def _reward(sec: Section, family: Family) -> Reward:
    d, name = _dim(family), sec.where.split(".", 1)[1]
    if isinstance(family, Learned) and sec.data.get("kind") not in learned_space.BUILT_IN_REWARDS:
        sec.text("kind", None, (*learned_space.BUILT_IN_REWARDS, *registry.REWARDS))
        return learned_space.reward(sec, family, name)
    kind = sec.text("kind", None, ("linear", "quadratic", "tabular", "ball"))
    if kind == "linear":
        sec.only({"kind", "weights", "offset"})
        return Linear(sec.array("weights", (d,)), sec.number("offset", 0.0), name=name)
    if kind == "quadratic":
        sec.only({"kind", "g", "eta", "center"})
        return Quadratic(sec.array("g", (d,), default=[0.0] * d), sec.number("eta", 1.0, lo=0),
                         sec.array("center", (d,), default=[0.0] * d), name=name)
    if kind == "ball":
        sec.only({"kind", "center", "radius", "gamma"})
        return Ball(sec.array("center", (d,)), sec.number("radius", 0.0, lo=0),
                    sec.number("gamma", 1.0, lo=0), name=name)
    sec.only({"kind", "values"})
    if isinstance(family, ConditionalCategorical):   # one list of values per input
        return Tabular(sec.array("values", (family.n_in, family.n_out)).ravel(), name=name)
    if not isinstance(family, Categorical):
        sec.fail("a tabular reward needs the categorical or conditional family", "kind")
    return Tabular(sec.array("values", (family.n,)), name=name)


def _distribution(sec: Section, family: Family) -> np.ndarray:
    """A distribution spec as a moment row."""
    if isinstance(family, Learned):
        return learned_space.source(sec, family)
    if isinstance(family, ConditionalCategorical):
        return conditional_space.distribution(sec, family)
    if isinstance(family, ConditionalGaussian):
        return conditional_space.gaussian_distribution(sec, family)
    d = _dim(family)
    if isinstance(family, Gaussian):
        sec.only({"mean", "cov", "var", "mixture"})
        if "mixture" in sec.data:
            return _mixture(sec, family)
        mean = sec.array("mean", (d,), default=[0.0] * d)
        if "cov" in sec.data:
            cov = sec.array("cov", (d, d))
            if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() < 0:
                sec.fail("must be a symmetric positive semi-definite matrix", "cov")
        else:
            cov = sec.number("var", 1.0, lo=0) * np.eye(d)
        return family.moments(mean[None], cov[None])[0]
    sec.only({"probs", "normal", "uniform", "mixture"})
    given = [k for k in ("probs", "normal", "uniform", "mixture") if k in sec.data]
    if len(given) != 1:
        sec.fail("give exactly one of probs, normal, uniform or mixture")
    if given[0] == "probs":
        p = sec.array("probs", (family.n,))
        if np.any(p < 0) or p.sum() <= 0:
            sec.fail("must be non-negative with a positive sum", "probs")
        return p / p.sum()
    if given[0] == "uniform":
        if sec.data["uniform"] is not True:
            sec.fail("must be true", "uniform")
        return np.full(family.n, 1.0 / family.n)
    if given[0] == "mixture":
        return _mixture(sec, family)
    return _discretised(sec.sub("normal"), family, np.zeros(family.n))


def _discretised(sec: Section, family: Categorical, out: np.ndarray, weight: float = 1.0) -> np.ndarray:
    sec.only({"mean", "var", "weight"})
    d = family.coords.shape[1]
    mean = np.atleast_1d(sec.array("mean", default=[0.0] * d))
    if mean.shape not in ((1,), (d,)):
        sec.fail(f"must be a number or a list of {d} numbers, got {mean.tolist()}", "mean")
    mean = np.broadcast_to(mean, (d,))
    var = sec.number("var", 1.0, lo=0, strict_lo=True)
    log = -np.sum((family.coords - mean) ** 2, axis=1) / (2 * var)
    p = np.exp(log - log.max())
    return out + weight * p / p.sum()


def _mixture(sec: Section, family: Family) -> np.ndarray:
    parts = sec.data["mixture"]
    if not isinstance(parts, list) or not parts:
        sec.fail("must be a non-empty list of {mean, var, weight} tables", "mixture")
    total = np.zeros(family.width)
    weights = []
    for i, part in enumerate(parts):
        s = Section(part, f"{sec.where}.mixture[{i}]", sec.origin)
        w = s.number("weight", 1.0, lo=0)
        weights.append(w)
        if isinstance(family, Gaussian):
            s.only({"mean", "var", "weight"})
            d = family.dim
            total += w * family.moments(s.array("mean", (d,))[None], s.number("var", 1.0, lo=0) * np.eye(d)[None])[0]
        else:
            total = _discretised(s, family, total, w)
    if sum(weights) <= 0:
        sec.fail("mixture weights must have a positive sum", "mixture")
    return total / sum(weights)


def _make_curator(sec: Section, rewards: dict[str, Reward], extra: set[str] = frozenset()) -> Curator:
    """A curator from ``rule``, ``K``, ``tau`` and ``reward`` or ``users``."""
    sec.only({"rule", "K", "tau", "candidates", "reward", "users"} | set(extra))
    rule_name = sec.text("rule", "luce", ("luce", "best_of_k", "tilt"))
    if rule_name == "luce":
        rule = Luce(sec.number("K", 2, lo=1, hi=K_MAX, integer=True), sec.number("tau", 1.0, lo=0, strict_lo=True))
    elif rule_name == "best_of_k":
        rule = BestOfK(sec.number("K", 2, lo=1, hi=K_MAX, integer=True))
    else:
        rule = Tilt(sec.number("tau", 1.0, lo=0, strict_lo=True),
                    sec.number("candidates", 1000, lo=1, hi=100_000, integer=True))
    if ("reward" in sec.data) == ("users" in sec.data):
        sec.fail("give exactly one of reward (a name) or users (a list of {reward, weight})")
    if "reward" in sec.data:
        return Curator(rule, [_named(sec, "reward", rewards)])
    users = sec.data["users"]
    if not isinstance(users, list) or not users:
        sec.fail("must be a non-empty list of {reward, weight} tables", "users")
    found, weights = [], []
    for i, u in enumerate(users):
        s = Section(u, f"{sec.where}.users[{i}]", sec.origin)
        s.only({"reward", "weight"})
        found.append(_named(s, "reward", rewards))
        weights.append(s.number("weight", 1.0, lo=0))
    if sum(weights) <= 0:
        sec.fail("user weights must have a positive sum", "users")
    return Curator(rule, found, np.array(weights))


def _named(sec: Section, key: str, table: dict[str, Any]) -> Any:
    name = sec.text(key)
    if name not in table:
        sec.fail(f"unknown {key} {name!r} (defined: {', '.join(table) or 'none'})", key)
    return table[name]


def _model_attrs(sec: Section, family: Family, rewards: dict[str, Reward],
                 sources: dict[str, np.ndarray], extra: set[str] = frozenset(),
                 moments: np.ndarray | None = None) -> dict[str, Any]:
    """Node attributes of a model: initial moments, sample size, retention, eval reward and, when
    given, retraining rate (absent: 1, a full refit every round)."""
    sec.only({"init", "sample_size", "retention", "retraining_rate", "eval_reward"} | set(extra))
    init = sec.data.get("init")
    if moments is not None:
        moments = moments.copy()
    elif isinstance(init, str):
        moments = _named(sec, "init", sources).copy()
    elif isinstance(family, Learned) and init is not None:
        sec.fail("a learned model starts from a source: give the source's name", "init")
    elif init is None:
        if not sources:
            sec.fail("is required when there is no source to start from", "init")
        moments = next(iter(sources.values())).copy()
    else:
        moments = _distribution(sec.sub("init"), family)
    attrs = {
        "kind": "model", "moments": moments,
        "sample_size": sec.number("sample_size", 1000, lo=1, hi=SAMPLE_SIZE_MAX, integer=True),
        "retention": sec.text("retention", "replace", RETENTIONS),
    }
    if "retraining_rate" in sec.data:
        attrs["retraining_rate"] = sec.number("retraining_rate", 1.0, lo=0, hi=1, strict_lo=True)
    if "eval_reward" in sec.data:
        attrs["eval_reward"] = _named(sec, "eval_reward", rewards)
    return attrs


def _explicit(top: Section, graph: nx.DiGraph, family: Family, rewards: dict[str, Reward],
              sources: dict[str, np.ndarray]) -> None:
    origin = top.origin
    shared: dict[tuple, Curator] = {}

    def one_object(curator: Curator) -> Curator:
        """Identical users share one object, so one round curates all their producers at once."""
        return shared.setdefault((curator.rule, tuple(map(id, curator.rewards)), tuple(curator.weights)), curator)

    users, mixes = {}, {}
    for name, spec in top.sub("models").data.items():
        _unique(top, graph, name, "models")
        sec = Section(spec, f"models.{name}", origin)
        graph.add_node(name, **_model_attrs(sec, family, rewards, sources, extra={"users", "mixture"}))
        if "users" in sec.data:
            users[name] = one_object(_make_curator(sec.sub("users"), rewards))
        if "mixture" in sec.data:
            mixes[name] = sec.sub("mixture")
    for name, spec in top.sub("pools").data.items():
        _unique(top, graph, name, "pools")
        Section(spec, f"pools.{name}", origin).only(set())
        graph.add_node(name, kind="pool")
    for name, spec in top.sub("curators").data.items():
        _unique(top, graph, name, "curators")
        sec = Section(spec, f"curators.{name}", origin)
        curator = one_object(_make_curator(sec, rewards, {"curates"}))
        judged = sec.text("curates")
        if judged not in graph or flows.kind(graph, judged) == "curator":
            sec.fail(f"unknown model, source or pool {judged!r}", "curates")
        graph.add_node(name, kind="curator", curator=curator)
        graph.add_edge(judged, name)
    mixture.expand(graph, mixes, users, list(sources), is_conditional(family))
    raw = top.data.get("flows", [])
    if not isinstance(raw, list):
        top.fail("must be a list of [[flows]] tables", "flows")
    for i, spec in enumerate(raw):
        sec = Section(spec, f"flows[{i}]", origin)
        sec.only({"from", "to", "weight", "transform", "inputs"})
        u, v = sec.text("from"), sec.text("to")
        for key, node in (("from", u), ("to", v)):
            if node not in graph:
                sec.fail(f"unknown node {node!r}", key)
        if graph.has_edge(u, v):
            sec.fail(f"duplicate flow {u!r} -> {v!r}")
        if flows.kind(graph, v) == "curator":
            sec.fail(f"{v!r} is a curator: say which node it judges with curators.{v}.curates", "to")
        attrs = {"weight": sec.number("weight", lo=0)}
        if "transform" in sec.data:
            t = sec.sub("transform")
            t.only({"matrix", "offset"})
            d = _dim(family)
            attrs["transform"] = (t.array("matrix", (d, d)), t.array("offset", (d,), default=[0.0] * d))
        if "inputs" in sec.data:
            attrs["inputs"] = sec.text("inputs")
        graph.add_edge(u, v, **attrs)


def _unique(top: Section, graph: nx.DiGraph, name: str, table: str) -> None:
    if name in graph:
        top.fail(f"name {name!r} is used twice", f"{table}.{name}")


MAX_TOPOLOGY_MODELS = 100_000
"""Largest ``n`` of a topology generator: networkx builds ~1e5 data-flow edges a second, so larger
graphs take minutes to validate (and a ring of 1e6 models over 100 rounds exceeds 24 GiB)."""

TOPOLOGY_PARAMS = {
    "complete": {"n"}, "ring": {"n", "directed"}, "star": {"n"},
    "erdos_renyi": {"n", "p", "directed"}, "barabasi_albert": {"n", "m", "directed"},
    "watts_strogatz": {"n", "k", "p"}, "communities": {"sizes", "p_in", "p_out"},
    "bipartite": {"producers", "consumers", "p"}, "shared_pool": {"n"},
    "graphml": {"path"}, "edgelist": {"path"},
}
TEMPLATE_KEYS = {"kind", "seed", "source", "real_share", "curation_ratio", "include_self",
                 "curated", "model", "curator"}


def _topology(sec: Section, graph: nx.DiGraph, family: Family, rewards: dict[str, Reward],
              sources: dict[str, np.ndarray], default_seed: int) -> None:
    kind = sec.text("kind", None, topologies.GENERATORS)
    sec.only(TEMPLATE_KEYS | TOPOLOGY_PARAMS[kind])
    seed = sec.number("seed", default_seed, lo=0, integer=True)
    models = _generate(sec, kind, seed)
    if models.number_of_nodes() == 0:
        sec.fail("the topology has no models", "kind")
    for v in models.nodes:
        if v in graph:
            sec.fail(f"model name {v!r} clashes with a source", "kind")
    real = sec.number("real_share", 0.0, lo=0, hi=1)
    lam = sec.number("curation_ratio", 0.5, lo=0, hi=1)
    if real + lam > 1 + flows.SHARE_TOLERANCE:
        sec.fail(f"real_share + curation_ratio = {real + lam:g} exceeds 1", "curation_ratio")
    source = None
    if real > 0:
        if not sources:
            sec.fail("real_share > 0 needs a [sources] entry", "real_share")
        source = sec.text("source", next(iter(sources)))
        if source not in sources:
            sec.fail(f"unknown source {source!r}", "source")
    curated = _curated_set(sec, list(models.nodes))
    model_sec = sec.sub("model")
    attrs = _model_attrs(model_sec, family, rewards, sources)
    cur_sec = sec.sub("curator")
    cur_sec.only({"rule", "K", "tau", "candidates", "reward", "rewards", "users"})
    cycle = cur_sec.data.get("rewards")
    if cycle is not None:
        if not isinstance(cycle, list) or not cycle or "reward" in cur_sec.data or "users" in cur_sec.data:
            cur_sec.fail("must be a non-empty list of reward names (instead of reward or users)", "rewards")
        per_model = [Section({**{k: v for k, v in cur_sec.data.items() if k != "rewards"}, "reward": r},
                             cur_sec.where, sec.origin) for r in cycle]
        built = [_make_curator(s, rewards) for s in per_model]
    elif curated:
        built = [_make_curator(Section({k: v for k, v in cur_sec.data.items() if k != "rewards"},
                                       cur_sec.where, sec.origin), rewards)]
    else:
        built = []
    topologies.to_dataflow(
        models, graph, model_attrs=lambda v: dict(attrs, moments=attrs["moments"].copy()),
        make_curator=lambda i, v: built[i % len(built)], curated=curated, source=source,
        real_share=real, curation_ratio=lam, include_self=sec.flag("include_self", False),
        pool=kind == "shared_pool",
    )


def _generated_overrides(top: Section, graph: nx.DiGraph, family: Family, rewards: dict[str, Reward],
                         sources: dict[str, np.ndarray]) -> None:
    """``[models.NAME]`` and ``[curators.NAME]`` beside a ``[topology]``: change generated nodes.
    A model table overrides the ``[topology.model]`` template's keys and may set the model's own
    ``curation_ratio`` and ``real_share`` (its other inputs absorb the change proportionally); a
    curator table (``users_<model>``) overrides the ``[topology.curator]`` template's."""
    template = top.sub("topology")
    for name, spec in top.sub("models").data.items():
        sec = Section(spec, f"models.{name}", top.origin)
        if name not in graph or flows.kind(graph, name) != "model":
            models = [str(m) for m in flows.nodes_of(graph, "model")][:6]
            sec.fail(f"not a model of the topology (models: {', '.join(models)})")
        shares = {k: sec.number(k, lo=0, hi=1) for k in ("curation_ratio", "real_share") if k in sec.data}
        merged = Section({**template.sub("model").data, **{k: v for k, v in spec.items() if k not in shares}},
                         sec.where, sec.origin)
        attrs = _model_attrs(merged, family, rewards, sources)
        graph.nodes[name].clear()
        graph.nodes[name].update(attrs)
        _set_mix(sec, graph, name, shares)
    named = {id(r): k for k, r in rewards.items()}
    for name, spec in top.sub("curators").data.items():
        sec = Section(spec, f"curators.{name}", top.origin)
        if name not in graph or flows.kind(graph, name) != "curator":
            curators = [str(c) for c in flows.nodes_of(graph, "curator")][:6]
            sec.fail(f"not a curator of the topology (curators: {', '.join(curators) or 'none'})")
        base = {k: v for k, v in template.sub("curator").data.items() if k != "rewards"}
        if "reward" not in spec and "users" not in spec:     # keep the generated users' reward(s)
            old = graph.nodes[name]["curator"]
            base.pop("users", None)
            base.pop("reward", None)
            base["users"] = [{"reward": named[id(r)], "weight": float(w)} for r, w in zip(old.rewards, old.weights,
                                                                                               strict=True)]
        else:
            base.pop("reward", None)
            base.pop("users", None)
        graph.nodes[name]["curator"] = _make_curator(Section({**base, **spec}, sec.where, sec.origin), rewards)


def _set_mix(sec: Section, graph: nx.DiGraph, model: str, shares: dict[str, float]) -> None:
    """Set ``model``'s real share and curation ratio (:mod:`~ecosystem.core.flows`): its other
    inputs absorb the difference in proportion to their weights (with both given, the raw inputs)."""
    real, lam = shares.get("real_share"), shares.get("curation_ratio")
    if real is not None and lam is not None and real + lam > 1 + flows.SHARE_TOLERANCE:
        sec.fail(f"the shares leave {1 - real - lam:g} of the mix for its other inputs", "curation_ratio")
    raw = any(flows.kind(graph, u) in flows.ABSORB["raw"] for u in graph.predecessors(model))
    if real is not None and lam is not None and not raw and 1 - real - lam > flows.SHARE_TOLERANCE:
        sec.fail(f"the shares leave {1 - real - lam:g} of the mix for its other inputs, which have none",
                 "curation_ratio")
    try:
        if real is not None:
            flows.set_share(graph, model, ("source",), real)
        if lam is not None:
            flows.set_curation_ratio(graph, model, lam, "raw" if real is not None and raw else "proportional")
    except flows.FlowError as err:
        sec.fail(str(err), "curation_ratio" if lam is not None else "real_share")


def _generate(sec: Section, kind: str, seed: int) -> nx.DiGraph:
    n = lambda: sec.number("n", None, lo=1, hi=MAX_TOPOLOGY_MODELS, integer=True)  # noqa: E731
    prob = lambda key="p": sec.number(key, None, lo=0, hi=1)  # noqa: E731
    if kind in ("complete", "shared_pool"):
        return topologies.complete(n()) if kind == "complete" else topologies.shared_pool(n())
    if kind == "ring":
        return topologies.ring(n(), sec.flag("directed", False))
    if kind == "star":
        return topologies.star(n())
    if kind == "erdos_renyi":
        return topologies.erdos_renyi(n(), prob(), seed, sec.flag("directed", False))
    if kind == "barabasi_albert":
        size = n()
        m = sec.number("m", None, lo=1, hi=max(size - 1, 1), integer=True)
        if m >= size:
            sec.fail(f"must be < n = {size}", "m")
        return topologies.barabasi_albert(size, m, seed, sec.flag("directed", False))
    if kind == "watts_strogatz":
        size = n()
        k = sec.number("k", None, lo=1, hi=size - 1 if size > 1 else 1, integer=True)
        return topologies.watts_strogatz(size, k, prob(), seed)
    if kind == "communities":
        sizes = sec.array("sizes", (None,))
        if np.any(sizes < 1) or np.any(sizes != np.round(sizes)) or len(sizes) == 0:
            sec.fail("must be a list of positive integers", "sizes")
        return topologies.communities([int(s) for s in sizes], prob("p_in"), prob("p_out"), seed)
    if kind == "bipartite":
        return topologies.bipartite(sec.number("producers", None, lo=1, integer=True),
                                    sec.number("consumers", None, lo=1, integer=True),
                                    sec.number("p", 1.0, lo=0, hi=1), seed)
    path = _inside(sec, "path")
    try:
        return topologies.load_file(path, kind)
    except flows.FlowError as err:
        sec.fail(f"{kind} file {str(path)!r}: {err}", "path")
    except OSError as err:
        sec.fail(f"cannot read {kind} file {str(path)!r}: {err.strerror or type(err).__name__}", "path")
    except (nx.NetworkXError, ValueError, TypeError, SyntaxError, KeyError, IndexError, RecursionError,
            OverflowError, AttributeError) as err:   # the parsers' messages quote the file: not shown
        sec.fail(f"cannot read {kind} file {str(path)!r}: not a valid {kind} file ({type(err).__name__})", "path")


ALLOW_OUTSIDE = "ECOSYSTEM_ALLOW_OUTSIDE_PATHS"
"""Environment variable (set by the command line's ``--allow-outside-paths``): when ``1``, files a
scenario names may lie outside the scenario's folder."""


def _inside(sec: Section, key: str) -> Path:
    """The file named by ``key``, relative to the scenario file's folder (the current folder for a
    scenario given as data); a path outside that folder is refused unless :data:`ALLOW_OUTSIDE` is set."""
    text = sec.text(key)
    if not text or "\0" in text:
        sec.fail("must be a file name", key)
    folder = Path.cwd() if sec.origin.startswith("<") else Path(sec.origin).parent
    path = Path(text) if Path(text).is_absolute() else folder / text
    if os.environ.get(ALLOW_OUTSIDE) != "1":
        try:
            path.resolve().relative_to(folder.resolve())
        except ValueError:
            sec.fail(f"{text!r} is outside the scenario's folder {str(folder)!r} "
                     f"(allow it with --allow-outside-paths)", key)
    return path


def _curated_set(sec: Section, names: list[str]) -> set[str]:
    value = sec.data.get("curated", "all")
    if value == "all":
        return set(names)
    if value == "none":
        return set()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        sec.fail("must be \"all\", \"none\" or a list of model names", "curated")
    unknown = [v for v in value if v not in names]
    if unknown:
        sec.fail(f"unknown model {unknown[0]!r} (models: {', '.join(names[:6])}...)", "curated")
    return set(value)
