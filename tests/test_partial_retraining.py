"""Partial retraining (THEORY.md section 8): a model with retraining rate ``eta`` moves
``theta_{t+1} = (1 - eta) theta_t + eta G(theta_t)``; the stable point is unchanged and the
Jacobian becomes ``(1 - eta) I + eta dG/dtheta``."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from conftest import DATA, SHIPPED

from ecosystem import analysis as an
from ecosystem import parse
from ecosystem.analysis.stability import RoundMap, affine_jacobian, jacobian, numerical_jacobian, stable_point
from ecosystem.core import rounds
from ecosystem.core.learned import Learned
from ecosystem.core.model import EcosystemModel
from ecosystem.errors import EcosystemError, FlowError, ScenarioError
from ecosystem.formats.scenario import Scenario, load


def with_rates(graph: nx.DiGraph, rates: dict | float | None) -> nx.DiGraph:
    """A copy of ``graph`` whose models have ``retraining_rate`` ``rates`` (one value for all, or per
    model name; None: the attribute removed)."""
    g = graph.copy()
    for m in [v for v, d in g.nodes(data=True) if d["kind"] == "model"]:
        if rates is None:
            g.nodes[m].pop("retraining_rate", None)
        elif isinstance(rates, dict):
            if m in rates:
                g.nodes[m]["retraining_rate"] = rates[m]
        else:
            g.nodes[m]["retraining_rate"] = rates
    return g


def build(sc: Scenario, rates: dict | float | None = None, **kw) -> EcosystemModel:
    return EcosystemModel(**(sc.model_args(graph=with_rates(sc.graph, rates)) | kw))


def gaussian_scenario(covariance: str = "full", **extra) -> Scenario:
    """Three 2-D Gaussian models on a ring (20% real data, 40% curated by their users, tilts when
    ``covariance="fixed"`` so that the analysis' exact Jacobian applies)."""
    rule = {"rule": "tilt", "tau": 1.0} if covariance == "fixed" else {"rule": "luce", "K": 3, "tau": 1.0}
    return parse({
        "space": {"family": "gaussian", "dim": 2, "covariance": covariance},
        "rewards": {"up": {"kind": "quadratic", "g": [1.0, 0.5], "eta": 0.5},
                    "down": {"kind": "quadratic", "g": [-1.0, 0.2], "eta": 0.8}},
        "sources": {"real": {"mean": [0.2, -0.1], "cov": [[1.0, 0.3], [0.3, 0.7]]}},
        "topology": {"kind": "ring", "n": 3, "real_share": 0.2, "curation_ratio": 0.4, "include_self": True,
                     "model": {"init": {"mean": [1.0, -1.0], "var": 0.5}, "sample_size": 300},
                     "curator": rule | {"rewards": ["up", "down"]}},
    } | extra)


SCENARIOS = {
    "categorical": lambda: load(DATA / "ring.toml", {"topology.model.sample_size": 300}),
    "gaussian": gaussian_scenario,
}
RATES = {"m0": 0.3, "m1": 1.0, "m2": 0.65}
"""Rates of the three-model rings (the categorical ring has more models: they refit fully)."""


# --------------------------------------------------------------------------- rate 1 is no rate


@pytest.mark.parametrize("family", SCENARIOS)
@pytest.mark.parametrize("mode", ["population", "sample"])
@pytest.mark.parametrize("order", ["synchronous", "sequential"])
def test_rate_one_is_bitwise_no_rate(family, mode, order):
    sc = SCENARIOS[family]()
    runs = []
    for rates in (None, 1.0):
        m = build(sc, rates, mode=mode, order=order)
        m.run(4)
        runs.append(m)
    assert np.array_equal(runs[0].state, runs[1].state)
    assert runs[0].agents_frame().equals(runs[1].agents_frame())


def test_rate_one_in_the_file_is_bitwise_the_shipped_run():
    base = load(DATA / "default.toml", {"steps": 5})
    given = load(DATA / "default.toml", {"steps": 5} | {f"models.{m}.retraining_rate": 1.0
                                                        for m in ("A_base", "B_base", "A_more", "B_more")})
    assert all("retraining_rate" not in d for _, d in base.graph.nodes(data=True))   # nothing stored if not given
    assert all(d["retraining_rate"] == 1.0 for v, d in given.graph.nodes(data=True) if d["kind"] == "model")
    frames = []
    for sc in (base, given):
        m = sc.build()
        m.run(5)
        frames.append((m.agents_frame(), m.ecosystem_frame()))
    assert frames[0][0].equals(frames[1][0]) and frames[0][1].equals(frames[1][1])


def digits(rate: float | None) -> Scenario:
    over = {"steps": 2, "topology.n": 2, "topology.curator.rewards": ["heavy", "light"],
            "topology.model.sample_size": 150, "space.init_size": 200, "space.eval_size": 60,
            "space.model": {"name": "gaussian_mixture", "components": 2, "latent": 4, "covariance": "diag"}}
    if rate is not None:
        over["topology.model.retraining_rate"] = rate
    return load(SHIPPED / "learned" / "digits.toml", over)


def test_learned_rate_one_is_bitwise_no_rate():
    pytest.importorskip("sklearn")
    frames = []
    for rate in (None, 1.0, 0.5):
        m = digits(rate).build()
        m.run(2)
        frames.append(m.agents_frame())
    assert frames[0].equals(frames[1])
    assert not frames[0].equals(frames[2])       # a rate below 1 changes the run


# --------------------------------------------------------------------------- learned models


class WeightedMean:
    """A 1-D model with unit variance whose fit is the weighted mean; records its weights."""

    def __init__(self) -> None:
        self.mean = 0.0
        self.seen: list[tuple[int, np.ndarray | None]] = []

    def fit(self, samples: np.ndarray, weights: np.ndarray | None, rng: np.random.Generator) -> None:
        w = np.full(len(samples), 1.0 / len(samples)) if weights is None else np.asarray(weights)
        self.seen.append((len(samples), None if weights is None else w.copy()))
        self.mean = float(w @ samples[:, 0] / w.sum())

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean + rng.standard_normal((n, 1))


class Shifted:
    """A fixed source N(``mean``, 1) in one dimension."""

    def __init__(self, mean: float) -> None:
        self.mean = mean

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean + rng.standard_normal((n, 1))


def test_learned_partial_refit_mixes_its_own_draws_with_weight_one_minus_eta():
    """A model at mean 0 trained only on N(4, 1) data, eta = 0.25: it fits on its 2000 training
    samples (weight 0.25 in all) and 2000 draws of itself (0.75), so its mean moves to about 1."""
    eta, size = 0.25, 2000
    fam = Learned(WeightedMean, dim=1, init_size=20_000, eval_size=50)
    start, data = fam.add(Shifted(0.0)), fam.add(Shifted(4.0))
    g = nx.DiGraph()
    g.add_node("start", kind="source", moments=start)
    g.add_node("data", kind="source", moments=data)
    g.add_node("A", kind="model", moments=start.copy(), sample_size=size, retraining_rate=eta)
    g.add_edge("data", "A", weight=1.0)
    m = EcosystemModel(g, fam, mode="sample", rng=0, metrics=("alignment",))
    obj = m.family.of(m.state[0])
    before = obj.mean
    m.step()
    n, w = obj.seen[-1]
    assert n == 2 * size
    assert np.allclose(w[:size], eta / size) and np.allclose(w[size:], (1 - eta) / size)
    expected = (1 - eta) * before + eta * 4.0
    assert abs(obj.mean - expected) < 4 * np.sqrt(eta**2 / size + (1 - eta) ** 2 / size)
    assert abs(obj.mean - 4.0) > 2.0                # not a full refit


# --------------------------------------------------------------------------- one round


def reference_round(kernel_full: rounds.RoundKernel, family, rows: np.ndarray, initial: np.ndarray,
                    eta: np.ndarray, order: str) -> np.ndarray:
    """``theta_i <- (1 - eta_i) theta_i + eta_i G_i(theta)`` computed from full (eta = 1) synchronous
    rounds: once for all models (synchronous), or model by model reading the newest rows."""
    def g_rows(x: np.ndarray) -> np.ndarray:
        return rounds.advance(kernel_full, rounds.RoundState.start(x, initial), mode="population",
                              order="synchronous").rows

    def moved(old: np.ndarray, fitted: np.ndarray, e: np.ndarray) -> np.ndarray:
        theta = (1 - e[:, None]) * family.pack(old) + e[:, None] * family.pack(fitted)
        return family.unpack(theta, initial)

    x = rows.copy()
    if order == "synchronous":
        return moved(x, g_rows(x), eta)
    for i in range(len(x)):
        step = np.where(np.arange(len(x)) == i, eta, 0.0)
        x[i] = moved(x, g_rows(x), step)[i]
    return x


@pytest.mark.parametrize("family", SCENARIOS)
@pytest.mark.parametrize("order", ["synchronous", "sequential"])
def test_population_round_is_the_interpolated_refit(family, order):
    sc = SCENARIOS[family]()
    partial = build(sc, RATES, order=order)
    full = build(sc, order=order)
    for _ in range(2):                       # away from the start: models differ from their initial rows
        partial.step()
    rows, initial = partial.state.copy(), partial.initial
    eta = partial.kernel.retraining_rate
    assert set(eta) == {0.3, 0.65, 1.0}
    expected = reference_round(full.kernel, sc.family, rows, initial, eta, order)
    partial.step()
    assert np.allclose(partial.state, expected, rtol=0, atol=1e-12)
    assert not np.allclose(partial.state, reference_round(full.kernel, sc.family, rows, initial,
                                                          np.ones_like(eta), order), atol=1e-6)


@pytest.mark.parametrize("family", SCENARIOS)
def test_sample_round_is_the_interpolated_sample_refit(family):
    """Sample mode draws the same training sets whatever the rate (same seed): one round at eta
    is ``(1 - eta) theta + eta`` (the round at eta = 1) in the free parameters."""
    sc = SCENARIOS[family]()
    partial, full = build(sc, RATES, mode="sample", rng=7), build(sc, mode="sample", rng=7)
    eta = partial.kernel.retraining_rate
    before = partial.state.copy()
    partial.step()
    full.step()
    fam = sc.family
    theta = (1 - eta[:, None]) * fam.pack(before) + eta[:, None] * fam.pack(full.state)
    assert np.allclose(partial.state, fam.unpack(theta, partial.initial), rtol=0, atol=1e-12)
    assert np.array_equal(partial.state[eta == 1], full.state[eta == 1])


# --------------------------------------------------------------------------- analysis


ANALYSED = {
    "categorical": lambda: load(DATA / "ring.toml"),
    "gaussian-full": lambda: gaussian_scenario("full"),
    "gaussian-fixed": lambda: gaussian_scenario("fixed"),
}


@pytest.mark.parametrize("family", ANALYSED)
def test_stable_point_does_not_depend_on_the_rate(family):
    sc = ANALYSED[family]()
    points = [stable_point(build(sc, rates)) for rates in (None, 0.3, RATES)]
    assert all(p.converged for p in points)
    for p in points[1:]:
        assert np.allclose(p.rows, points[0].rows, rtol=0, atol=1e-10)


@pytest.mark.parametrize("family", ANALYSED)
def test_jacobian_at_eta_is_the_damped_full_jacobian(family):
    sc = ANALYSED[family]()
    full, partial = build(sc), build(sc, RATES)
    point = stable_point(full)
    j1 = jacobian(full, point.theta)
    jeta = jacobian(partial, point.theta)
    g = RoundMap.of(partial)
    per_model = point.theta.size // g.n_models
    eta = np.repeat(g.kernel.retraining_rate, per_model)
    assert (eta < 1).any()
    damped = np.diag(1 - eta) + eta[:, None] * j1
    assert np.allclose(jeta, damped, rtol=0, atol=1e-7)
    assert np.allclose(jeta, numerical_jacobian(g, point.theta, 1e-5), rtol=0, atol=1e-7)
    assert (affine_jacobian(g) is not None) == (family == "gaussian-fixed")


@pytest.mark.parametrize("family", ["categorical", "gaussian-fixed"])
def test_influence_does_not_depend_on_the_rate_and_convergence_does(family):
    sc = ANALYSED[family]()
    full, partial = an.analyze(build(sc)), an.analyze(build(sc, 0.5))
    assert np.allclose(partial.influence.influence, full.influence.influence, rtol=1e-6, atol=1e-9)
    eig = np.linalg.eigvals(jacobian(build(sc), full.point.theta))    # of (1 - eta) I + eta J: 1 - eta + eta lambda
    assert partial.spectral_radius == pytest.approx(np.max(np.abs(0.5 + 0.5 * eig)), abs=1e-6)
    assert partial.observed_rate == pytest.approx(partial.spectral_radius, abs=0.02)


def oscillating(rate: float | None) -> Scenario:
    """A mean-only Gaussian trained 80% on its own outputs mapped by x -> -1.5 x and 20% on real
    data: ``G(theta) = 0.2 mu + 0.8 (-1.5) theta``, slope -1.2 (a diverging oscillation)."""
    model = {"init": {"mean": [1.0], "var": 1.0}} | ({} if rate is None else {"retraining_rate": rate})
    return parse({
        "space": {"family": "gaussian", "dim": 1, "covariance": "fixed"},
        "rewards": {"r": {"kind": "linear", "weights": [1.0]}},
        "sources": {"real": {"mean": [2.0], "var": 1.0}},
        "models": {"A": model | {"eval_reward": "r"}},
        "flows": [{"from": "real", "to": "A", "weight": 0.2},
                  {"from": "A", "to": "A", "weight": 0.8, "transform": {"matrix": [[-1.5]], "offset": [0.0]}}],
    })


def test_partial_retraining_makes_an_oscillating_loop_converge():
    star = 0.2 * 2.0 / (1 + 0.8 * 1.5)               # theta* = 0.2 mu / (1 + 1.2)
    full, half = an.analyze(oscillating(None).build()), an.analyze(oscillating(0.5).build())
    for a in (full, half):
        assert a.point.converged and a.point.rows[0, 0] == pytest.approx(star, abs=1e-12)
    assert full.spectral_radius == pytest.approx(1.2, abs=1e-12) and full.spectral_radius > 1
    assert half.spectral_radius == pytest.approx(0.1, abs=1e-12) and half.spectral_radius < 1
    runs = {}
    for rate in (None, 0.5):
        m = oscillating(rate).build()
        m.run(60)
        runs[rate] = m.state[0, 0]
    assert abs(runs[0.5] - star) < 1e-12
    assert abs(runs[None] - star) > 1e3               # |1.2|^60: the full refit diverges


def test_partial_retraining_damps_a_numerical_oscillation():
    """The same loop in sequential order (no exact Jacobian): finite differences of the round see
    the same eigenvalues, -1.2 under full refits and -0.1 at eta = 0.5."""
    full, half = (EcosystemModel(**(oscillating(rate).model_args() | {"order": "sequential"})) for rate in (None, 0.5))
    theta = stable_point(half).theta
    assert affine_jacobian(RoundMap.of(half)) is None
    assert an.spectral_radius(jacobian(full, theta)) == pytest.approx(1.2, abs=1e-6)
    assert an.spectral_radius(jacobian(half, theta)) == pytest.approx(0.1, abs=1e-6)


# --------------------------------------------------------------------------- scenario keys


@pytest.mark.parametrize("value", [0, 0.0, 1.5, -0.2, "fast", True])
@pytest.mark.parametrize("where", ["models", "topology", "event"])
def test_retraining_rate_out_of_range_is_refused_naming_the_key(where, value):
    over = {"models": {"models.A_base.retraining_rate": value},
            "topology": {"topology.model.retraining_rate": value}}.get(where)
    if where == "event":
        data = DATA / "default.toml"
        event = {"round": 2, "action": "add_model", "target": "C",
                 "value": {"retraining_rate": value, "inputs": [{"from": "real", "weight": 1.0}]}}
        with pytest.raises(EcosystemError, match="retraining_rate"):
            load(data, {"events": [event]})
        return
    with pytest.raises(ScenarioError, match="retraining_rate"):
        load(DATA / ("default.toml" if where == "models" else "ring.toml"), over)


def test_retraining_rate_in_files_and_events_reaches_the_round():
    sc = load(DATA / "ring.toml", {"topology.model.retraining_rate": 0.4})
    m = sc.build()
    assert np.all(m.kernel.retraining_rate == 0.4)
    event = {"round": 2, "action": "add_model", "target": "C",
             "value": {"retraining_rate": 0.25, "inputs": [{"from": "real", "weight": 1.0}]}}
    m = load(DATA / "default.toml", {"events": [event]}).build()
    m.run(3)
    assert m.kernel.retraining_rate[m.index_of("C")] == 0.25
    assert m.kernel.retraining_rate[m.index_of("A_base")] == 1.0


def test_kernel_refuses_a_rate_outside_zero_one_from_python():
    g = with_rates(gaussian_scenario().graph, {"m1": 0.0})
    with pytest.raises(FlowError, match=r"model 'm1'.*retraining_rate"):
        rounds.RoundKernel(g, gaussian_scenario().family)
