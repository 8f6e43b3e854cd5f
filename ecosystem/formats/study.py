"""Study files (TOML): a base scenario, axes to sweep and seeds, expanded into runs.

A study is data: it is parsed with :mod:`tomllib` and checked key by key, never
evaluated. Its reference is ``scenarios/studies/REFERENCE.md``. A *setting* is one
point of the study's axes: a dict of dotted scenario keys to values (plus the labels
of its variants); a *run* is one (setting, seed). Settings are applied to the parsed
base scenario with :func:`ecosystem.formats.scenario.set_dotted`, so any scenario key can be
swept. Every problem raises :class:`StudyError` (a :class:`ScenarioError`), whose
message names the study file, the key and the bad value.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecosystem.errors import StudyError, UsageError, show
from ecosystem.formats import scenario as scenario_mod
from ecosystem.formats.names import resolve
from ecosystem.formats.scenario import Scenario, ScenarioError, read_toml
from ecosystem.formats.section import INT_MAX, MAX_ABS, Section

STUDY_KEYS = {"name", "description", "scenario", "seeds", "analysis", "policy", "set", "grid", "variants", "random"}
POLICY_KEYS = {"budget": None, "objective": "mean", "max_ratio": 0.9, "absorb": "proportional"}
"""The keys of a study's ``[policy]`` table and their defaults (``budget`` is required)."""
DISTRIBUTIONS = ("uniform", "loguniform", "integers", "choice")
RESERVED = {"seed": "the run seeds come from `seeds`", "name": "a run's name is the study's"}
GENERATOR_PARAMS = set().union(*scenario_mod.TOPOLOGY_PARAMS.values())
"""Topology keys that belong to one generator kind (dropped when ``topology.kind`` changes)."""


@dataclass(frozen=True)
class Setting:
    """One point of a study: variant labels and the dotted-key overrides it applies.

    ``labels`` maps a variant axis (e.g. ``topology``) to the chosen variant's name;
    ``values`` maps each swept dotted key (grid and random axes) to its value;
    ``overrides`` is everything applied to the base scenario (variants' keys included).
    """

    labels: dict[str, str]
    values: dict[str, Any]
    overrides: dict[str, Any]

    @property
    def id(self) -> str:
        """A stable 16-hex-digit id: the same labels and overrides always give the same id."""
        return _digest({"labels": self.labels, "overrides": self.overrides})[:16]

    def describe(self) -> str:
        """``topology=ring, topology.curator.K=2``: labels, then swept values."""
        parts = [f"{k}={v}" for k, v in self.labels.items()] + [f"{k}={v!r}" for k, v in self.values.items()]
        return ", ".join(parts) or "(base)"


@dataclass
class Study:
    """A validated study: the base scenario (parsed TOML), fixed overrides, settings and seeds."""

    name: str
    description: str
    path: str
    scenario_path: str
    base: dict
    fixed: dict[str, Any]
    settings: list[Setting]
    seeds: list[int]
    analysis: bool = False
    axes: list[str] = field(default_factory=list)
    policy: dict[str, Any] | None = None
    """The ``[policy]`` table (every key of :data:`POLICY_KEYS`), or None: no policy per run."""

    @property
    def fingerprint(self) -> str:
        """Hash of what every run shares (base scenario, fixed overrides, analysis flag, name).

        Seeds and axis values are not part of it: adding seeds or grid values to a study
        keeps its database usable (the new runs are added, the finished ones kept).
        """
        shared = {"name": self.name, "base": self.base, "fixed": self.fixed, "analysis": self.analysis}
        return _digest(shared | ({"policy": self.policy} if self.policy else {}))

    def runs(self) -> list[tuple[Setting, int]]:
        """Every (setting, seed), seed-major: early partial results cover every setting."""
        return [(s, seed) for seed in self.seeds for s in self.settings]

    def scenario_data(self, setting: Setting, seed: int) -> dict:
        """The scenario dict of one run (a fresh copy): base, then ``[set]``, then the setting, then the seed."""
        return apply(apply(self.base, self.fixed), setting.overrides, seed)

    def build(self, setting: Setting, seed: int) -> Scenario:
        """The validated :class:`Scenario` of one run."""
        return scenario_mod.parse(self.scenario_data(setting, seed), origin=self.scenario_path,
                                  default_name=scenario_mod.default_name(Path(self.scenario_path)))


def apply(base: dict, overrides: dict[str, Any], seed: int | None = None) -> dict:
    """A copy of the scenario dict ``base`` with dotted ``overrides`` set (and ``seed``).

    Setting ``topology.kind`` drops the generator parameters of ``base`` that the new kind
    does not take (e.g. ``n`` when switching from ``ring`` to ``communities``). The run seed
    seeds everything, topology generators included, unless ``topology.seed`` is set.
    """
    data = scenario_mod.with_overrides(base, overrides)
    if seed is not None:
        data["seed"] = seed
    return data


def load(path: str | Path, check: bool = True) -> Study:
    """Read and validate a study file; with ``check``, also build every setting's scenario once."""
    path = Path(path)
    data = read_toml(path, StudyError, what="study")
    study = parse(data, path)
    if check:
        for setting in study.settings:
            try:
                scenario = study.build(setting, study.seeds[0])
            except ScenarioError as err:
                raise StudyError(f"{path}: setting {setting.describe()}: {err}") from None
            if study.policy:
                _check_policy(study, setting, scenario)
    return study


def _check_policy(study: Study, setting: Setting, scenario: Scenario) -> None:
    """Refuse, before any run, a setting whose runs cannot compute the ``[policy]`` (it needs the
    population-mode stable point: exact families, runs in population mode, curated models with users)."""
    from ecosystem.analysis import AnalysisError, policy
    from ecosystem.core.learned import Learned

    where = f"{study.path}: setting {setting.describe()}: policy"
    learned = isinstance(scenario.family, Learned)
    if learned or scenario.mode != "population":
        runs = "learned models (sample mode)" if learned else f"in {scenario.mode} mode"
        raise StudyError(f"{where}: needs the population-mode stable point (runs in population mode, categorical "
                         f"or gaussian family), but this setting runs {runs} (in sample mode: ecosystem optimize "
                         f"--search derivative-free)")
    pol = study.policy
    try:
        policy.make_problem(scenario.build(), pol["budget"], pol["objective"],
                            max_ratio=pol["max_ratio"], absorb=pol["absorb"])
    except AnalysisError as err:
        raise StudyError(f"{where}: {err}") from None


def parse(data: dict, path: str | Path) -> Study:
    """Validate a study given as a dict (the parsed TOML of the file at ``path``)."""
    path = Path(path)
    origin = str(path)
    top = _Sec(data, "", origin)
    top.only(STUDY_KEYS)
    name = scenario_mod.safe_name(top, top.text("name", path.stem))
    description = top.text("description", "")
    scenario_path = _scenario_path(top, path)
    try:
        base = read_toml(scenario_path, ScenarioError)
    except ScenarioError as err:
        top.fail(str(err), "scenario")
    seeds = _seeds(top)
    analysis = top.flag("analysis", False)
    policy = _policy(top) if "policy" in top.data else None

    fixed = _flat(top.sub("set"), leaf=lambda v: not isinstance(v, dict))
    grid = _flat(top.sub("grid"), leaf=lambda v: not isinstance(v, dict))
    randoms = top.sub("random")
    random_keys = _flat(_Sec({k: v for k, v in randoms.data.items() if k not in ("samples", "seed")},
                                randoms.where, origin),
                        leaf=lambda v: not isinstance(v, dict) or not any(isinstance(x, dict) for x in v.values()))
    variants = top.sub("variants")

    owner: dict[str, str] = {}

    def claim(key: str, where: str) -> None:
        if key in RESERVED:
            top.fail(f"cannot be swept or set: {RESERVED[key]}", f"{where}.{key}")
        if owner.get(key) == "set" and where.startswith("variants."):
            return  # a variant may make an exception to [set]
        if key in owner:
            top.fail(f"is also set in {owner[key]}", f"{where}.{key}")
        owner[key] = where

    for key in fixed:
        claim(key, "set")
    axes: list[tuple[str, list[tuple[dict[str, str], dict[str, Any], dict[str, Any]]]]] = []
    for axis, table in variants.data.items():
        sec = _Sec(table, f"variants.{axis}", origin)
        if not sec.data:
            sec.fail("must hold at least one variant table")
        if not axis.strip() or axis in GENERATOR_PARAMS | {"seed", "status", "run_id"} or "." in axis:
            sec.fail("choose another axis name (it clashes with a scenario key or a results column)")
        points = []
        keys_of_axis: set[str] = set()
        for label, spec in sec.data.items():
            overrides = _flat(_Sec(spec, f"variants.{axis}.{label}", origin), leaf=lambda v: not isinstance(v, dict))
            keys_of_axis |= overrides.keys()
            points.append(({axis: label}, {}, overrides))
        for key in sorted(keys_of_axis):
            claim(key, f"variants.{axis}")
        axes.append((axis, points))
    for key, values in grid.items():
        claim(key, "grid")
        if not isinstance(values, list) or not values:
            top.fail(f"must be a non-empty list of values, got {show(values)}", f"grid.{key}")
        if len({_canonical(v) for v in values}) != len(values):
            top.fail(f"has repeated values: {show(values)}", f"grid.{key}")
        axes.append((key, [({}, {key: v}, {key: v}) for v in values]))
    if random_keys:
        for key in random_keys:
            claim(key, "random")
        axes.append(("random", _random_points(randoms, random_keys)))
    elif randoms.data:
        randoms.fail("give at least one key to sample, e.g. \"topology.curator.tau\" = {uniform = [0.5, 2]}")

    settings = []
    for combo in itertools.product(*(points for _, points in axes)):
        labels, values, overrides = {}, {}, {}
        for lab, val, over in combo:
            labels.update(lab)
            values.update(val)
            overrides.update(over)
        settings.append(Setting(labels, values, overrides))
    ids = [s.id for s in settings]
    if len(set(ids)) != len(ids):
        top.fail("two settings are identical (a repeated variant or random draw)", "grid")
    axis_names = [a for a, _ in axes if a != "random"] + list(random_keys)
    study = Study(name=name, description=description, path=origin, scenario_path=str(scenario_path),
                  base=base, fixed=fixed, settings=settings, seeds=seeds, analysis=analysis, axes=axis_names,
                  policy=policy)
    return study


class _Sec(Section):
    """A :class:`Section` whose errors are :class:`StudyError`."""

    def fail(self, message: str, key: str | None = None):
        try:
            super().fail(message, key)
        except ScenarioError as err:
            raise StudyError(str(err)) from None

    def sub(self, key: str, default: Any = None) -> _Sec:
        return _Sec(self.data.get(key, {} if default is None else default), self._at(key), self.origin)


def _scenario_path(top: Section, path: Path) -> Path:
    """The base scenario: a path ending in ``.toml`` (relative to the study file) or a shipped name."""
    try:
        return resolve(top.text("scenario"), base=path.parent)
    except UsageError as err:
        top.fail(str(err), "scenario")


def _policy(top: Section) -> dict[str, Any]:
    """The ``[policy]`` table: ``budget`` (>= 0), ``objective`` (``mean`` | ``min``), ``max_ratio``
    (in (0, 1]) and ``absorb`` (what absorbs a change of a curation ratio), as ``ecosystem optimize``."""
    from ecosystem.core.flows import ABSORB

    sec = top.sub("policy")
    if not isinstance(sec.data, dict):
        top.fail(f"must be a table, got {show(sec.data)}", "policy")
    sec.only(set(POLICY_KEYS))
    return {"budget": sec.number("budget", None, lo=0),
            "objective": sec.text("objective", POLICY_KEYS["objective"], ("mean", "min")),
            "max_ratio": sec.number("max_ratio", POLICY_KEYS["max_ratio"], lo=0, hi=1, strict_lo=True),
            "absorb": sec.text("absorb", POLICY_KEYS["absorb"], tuple(ABSORB))}


def _seeds(top: Section) -> list[int]:
    value = top.data.get("seeds", [0])
    if isinstance(value, dict):
        sec = top.sub("seeds")
        sec.only({"start", "count"})
        start = sec.number("start", 0, lo=0, hi=INT_MAX, integer=True)
        count = sec.number("count", None, lo=1, hi=1_000_000, integer=True)
        if start + count - 1 > INT_MAX:
            sec.fail(f"start + count - 1 must be at most {INT_MAX} (2**63 - 1)", "count")
        return list(range(start, start + count))
    if not isinstance(value, list) or not value or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= INT_MAX for s in value):
        top.fail(f"must be a non-empty list of integers >= 0 or {{start, count}}, got {show(value)}", "seeds")
    if len(set(value)) != len(value):
        top.fail(f"has repeated seeds: {show(value)}", "seeds")
    return list(value)


def _flat(sec: Section, leaf) -> dict[str, Any]:
    """Dotted keys of a table: ``{"topology": {"kind": x}}`` and ``{"topology.kind": x}`` alike.

    A quoted key with dots (``"topology.model.init" = {...}``) sets its value whole.
    """
    out: dict[str, Any] = {}

    def walk(table: dict, prefix: str) -> None:
        for key, value in table.items():
            if not key or any(not part for part in key.split(".")):
                sec.fail("is not a dotted scenario key", f"{prefix}{key}")
            full = f"{prefix}{key}"
            if "." not in key and not leaf(value):
                if not value:
                    sec.fail("is an empty table", full)
                walk(value, f"{full}.")
            else:
                out[full] = value

    walk(sec.data, "")
    return out


def _random_points(sec: Section, keys: dict[str, Any]) -> list[tuple[dict, dict, dict]]:
    """``samples`` draws of every random key, from ``numpy.random.default_rng(seed)``, in file order."""
    samples = sec.number("samples", None, lo=1, hi=1_000_000, integer=True)
    rng = np.random.default_rng(sec.number("seed", 0, lo=0, integer=True))
    draws = {}
    for key, spec in keys.items():
        s = _Sec(spec if isinstance(spec, dict) else {}, f"{sec.where}.{key}", sec.origin)
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            s.fail(f"must be one of {{uniform = [lo, hi]}}, {{loguniform = [lo, hi]}}, "
                   f"{{integers = [lo, hi]}}, {{choice = [...]}}; got {show(spec)}")
        dist, args = next(iter(spec.items()))
        if dist == "choice":
            if not isinstance(args, list) or not args:
                s.fail("must be a non-empty list", dist)
            draws[key] = [args[i] for i in rng.integers(0, len(args), samples)]
            continue
        lo, hi = _bounds(s, dist, args, integer=dist == "integers", positive=dist == "loguniform")
        if dist == "uniform":
            draws[key] = [float(v) for v in rng.uniform(lo, hi, samples)]
        elif dist == "loguniform":
            draws[key] = [float(v) for v in np.exp(rng.uniform(math.log(lo), math.log(hi), samples))]
        else:
            draws[key] = [int(v) for v in rng.integers(lo, hi, samples, endpoint=True)]
    return [({}, {k: draws[k][i] for k in keys}, {k: draws[k][i] for k in keys}) for i in range(samples)]


def _bounds(s: Section, dist: str, args: Any, integer: bool, positive: bool) -> tuple[float, float]:
    ok = isinstance(args, list) and len(args) == 2 and all(
        isinstance(a, int | float) and not isinstance(a, bool) and abs(a) <= (INT_MAX if integer else MAX_ABS)
        and math.isfinite(a) for a in args)
    if ok and integer:
        ok = all(isinstance(a, int) for a in args)
    if not ok or args[0] > args[1] or (positive and args[0] <= 0):
        kind = "integers" if integer else "positive numbers" if positive else "numbers"
        s.fail(f"must be [lo, hi] with lo <= hi, {kind}; got {show(args)}", dist)
    return args[0], args[1]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()

