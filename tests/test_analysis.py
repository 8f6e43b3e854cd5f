"""Stable points, Jacobians, influence and backfire (THEORY.md section 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DATA, RING
from hypothesis import given, settings
from hypothesis import strategies as st

from ecosystem import analysis as an
from ecosystem import parse
from ecosystem.studies.reproduce import (
    _explicit,
    _finite_difference,
    _theorem,
    coupling,
    mechanism_data,
    mechanism_scenario,
)


def random_gaussian_ecosystem(seed: int, fixed: bool = True) -> dict:
    """2-3 Gaussian models (d = 2) in a random data-flow graph with tilt curators and transforms."""
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(2, 4)), 2
    names = [f"g{i}" for i in range(n)]
    data = {
        "space": {"family": "gaussian", "dim": d, "covariance": "fixed" if fixed else "full"},
        "rewards": {f"r{i}": {"kind": "quadratic", "g": rng.normal(size=d).tolist(),
                              "eta": float(rng.uniform(0.1, 1))} for i in range(n)},
        "sources": {"real": {"mean": rng.normal(size=d).tolist(), "var": 0.5}},
        "models": {m: {"init": {"mean": rng.normal(size=d).tolist(), "var": float(rng.uniform(0.3, 1))}}
                   for m in names},
        "curators": {f"u{i}": {"curates": m, "rule": "tilt", "tau": float(rng.uniform(0.5, 2)), "reward": f"r{i}"}
                     for i, m in enumerate(names)},
        "flows": [],
    }
    for i, m in enumerate(names):
        shares = rng.dirichlet(np.ones(3)) * np.array([1, 1, 1])
        other = names[(i + 1) % n]
        rot = rng.uniform(-np.pi, np.pi)
        mat = (0.8 * np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])).tolist()
        data["flows"] += [
            {"from": "real", "to": m, "weight": float(shares[0])},
            {"from": f"u{(i + 1) % n}", "to": m, "weight": float(shares[1])},
            {"from": other, "to": m, "weight": float(shares[2]),
             "transform": {"matrix": mat, "offset": rng.normal(size=d).tolist()}},
        ]
    return data


def random_categorical_ecosystem(seed: int) -> dict:
    """2-3 categorical models on 9 outcomes, random rewards, Luce curators, cross flows."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(2, 4)), 9
    names = [f"c{i}" for i in range(n)]
    data = {
        "space": {"n": k},
        "rewards": {f"r{i}": {"kind": "tabular", "values": rng.normal(size=k).tolist()} for i in range(n)},
        "sources": {"real": {"probs": rng.dirichlet(np.ones(k) * 2).tolist()}},
        "models": {m: {} for m in names},
        "curators": {f"u{i}": {"curates": m, "K": int(rng.integers(2, 6)), "tau": float(rng.uniform(0.5, 2)),
                               "reward": f"r{i}"} for i, m in enumerate(names)},
        "flows": [],
    }
    for i, m in enumerate(names):
        shares = rng.dirichlet(np.ones(3)) * 0.7 + np.array([0.3, 0, 0])
        data["flows"] += [
            {"from": "real", "to": m, "weight": float(shares[0])},
            {"from": f"u{i}", "to": m, "weight": float(shares[1])},
            {"from": f"u{(i + 1) % n}", "to": m, "weight": float(shares[2])},
        ]
    return data


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_analytic_jacobian_matches_numerical(seed):
    model = parse(random_gaussian_ecosystem(seed)).build()
    point = an.stable_point(model)
    assert point.converged
    g = an.RoundMap.of(model)
    exact = an.affine_jacobian(g)
    assert exact is not None
    numerical = an.stability.numerical_jacobian(g, point.theta, 1e-5)
    np.testing.assert_allclose(exact, numerical, atol=1e-8)


def test_jacobian_is_numerical_when_not_affine():
    model = parse(random_gaussian_ecosystem(3, fixed=False)).build()
    assert an.affine_jacobian(an.RoundMap.of(model)) is None


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_influence_ift_matches_resolved_stable_points(seed, gaussian):
    data = random_gaussian_ecosystem(seed) if gaussian else random_categorical_ecosystem(seed)
    model = parse(data).build()
    point = an.stable_point(model)
    assert point.converged
    inf = an.influence(model, point)
    for p, param in enumerate(inf.parameters):
        fd = an.influence_by_resolving(model, point, param, step=1e-4)
        scale = max(1.0, np.abs(fd).max())
        np.testing.assert_allclose(inf.influence[:, p], fd, atol=1e-6 * scale, rtol=1e-6)


def test_influence_of_other_parameters_tau_and_edge_weight():
    model = parse(random_categorical_ecosystem(11)).build()
    point = an.stable_point(model)
    params = [an.Parameter("tau", "u0"), an.Parameter("K", "u1"), an.Parameter("real_share", "c0"),
              an.Parameter("weight", ("u1", "c0"))]
    inf = an.influence(model, point, params)
    for p, param in enumerate(params):
        fd = an.influence_by_resolving(model, point, param, step=1e-4)
        np.testing.assert_allclose(inf.influence[:, p], fd, atol=1e-6 * max(1, np.abs(fd).max()))


def test_shared_pool_curation_enters_through_the_pool():
    """No model has curated inputs in a shared pool: the default parameters are the curated
    shares of the pool, their curated model is the judged producer, and the IFT holds."""
    data = {"seed": 2, "space": {"n": 7},
            "rewards": {f"r{k}": {"kind": "tabular", "values": np.random.default_rng(k).normal(size=7).tolist()}
                        for k in range(3)},
            "sources": {"real": {"probs": (np.ones(7) / 7).tolist()}},
            "topology": {"kind": "shared_pool", "n": 3, "real_share": 0.3, "curation_ratio": 0.5,
                         "curator": {"rule": "luce", "K": 3, "rewards": ["r0", "r1", "r2"]}}}
    model = parse(data).build()
    params = an.curation_parameters(model)
    assert params and all(p.kind == "weight" and p.target[1] == "pool" for p in params)
    assert {p.curated_model(model.graph) for p in params} == set(model.kernel.models)
    result = an.analyze(model)
    report = result.to_dict()
    assert report["curated_models"] == [str(p.curated_model(model.graph)) for p in params]
    assert np.abs(result.influence.influence).max() > 1e-3
    for p, param in enumerate(params):
        fd = an.influence_by_resolving(model, result.point, param, step=1e-4)
        np.testing.assert_allclose(result.influence.influence[:, p], fd, atol=1e-6 * max(1, np.abs(fd).max()))
    for b in result.backfire:
        assert b.curated in model.kernel.models


def _mechanism_model(scale: float):
    """The paper's mechanism with coupling A scaled so its spectral radius is ``scale``."""
    ref = mechanism_data()
    data = mechanism_scenario(ref, 1.0, 0.4)
    a_mat = coupling(ref, 1.0)
    a_mat *= scale / np.max(np.abs(np.linalg.eigvals(a_mat)))
    data["flows"][2]["transform"]["matrix"] = a_mat.tolist()
    return parse(data).build()


@pytest.mark.parametrize("scale", [0.5, 0.9, 1.2])
def test_spectral_radius_predicts_convergence(scale):
    model = _mechanism_model(scale)
    g = an.RoundMap.of(model)
    jac = an.affine_jacobian(g)
    rho = an.spectral_radius(jac)
    # the joint map (theta, phi) -> (phi + lambda a, A theta) has eigenvalues +-sqrt(eig(A))
    assert rho == pytest.approx(np.sqrt(scale), rel=1e-9)
    point = an.stable_point(model)       # exists (I - J is invertible) even when unstable
    assert point.converged
    theta = g.pack(model.state)
    start = np.max(np.abs(theta - point.theta))
    for _ in range(300):
        theta = g(theta)
    end = np.max(np.abs(theta - point.theta))
    if rho < 1:
        assert end < 1e-6 * start
        assert an.observed_rate(model, point) == pytest.approx(rho, rel=0.02)
    else:
        assert end > 1e3 * start


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_isolated_curated_model_never_has_negative_self_influence(seed):
    rng = np.random.default_rng(seed)
    n, lam = int(rng.integers(3, 12)), float(rng.uniform(0.05, 0.9))
    data = {"space": {"n": n}, "rewards": {"r": {"kind": "tabular", "values": rng.normal(size=n).tolist()}},
            "sources": {"real": {"probs": rng.dirichlet(np.ones(n)).tolist()}}, "models": {"A": {}},
            "curators": {"u": {"curates": "A", "K": int(rng.integers(2, 8)), "tau": float(10 ** rng.uniform(-1, 1)),
                               "reward": "r"}},
            "flows": [{"from": "real", "to": "A", "weight": 1 - lam}, {"from": "u", "to": "A", "weight": lam}]}
    result = an.analyze(parse(data).build())
    assert result.influence.influence[0, 0] >= -1e-12
    assert result.influence.raw[0, 0] >= -1e-12
    assert result.backfire == []


def test_backfire_report_finds_sign_reversals():
    inf = an.Influence(["a", "b"], [an.Parameter("curation_ratio", "a")],
                       influence=np.array([[0.5], [-0.2]]), raw=np.array([[0.4], [0.1]]), dtheta=np.zeros((1, 1)))
    found = an.backfire(inf)
    assert [(b.curated, b.affected) for b in found] == [("a", "b")]


@pytest.mark.parametrize("t", [0.1, 0.55, 0.9, 1.0])
def test_gaussian_mechanism_derivatives_agree(t):
    ref = mechanism_data()
    theorem, raw = _theorem(ref, t, ref["lambda0"])
    np.testing.assert_allclose(theorem, _explicit(ref, t, ref["lambda0"]), atol=1e-9)
    np.testing.assert_allclose(theorem, _finite_difference(ref, t, ref["lambda0"]), atol=1e-9)
    assert raw[0] > 0                     # curation direction locally aligned with J_p


def test_gaussian_mechanism_engine_converges_to_closed_form():
    ref = mechanism_data()
    t, lam = 0.6, 0.4
    model = parse(mechanism_scenario(ref, t, lam)).build()
    model.run(200)
    a_mat, a = coupling(ref, t), np.asarray(ref["curation_shift_a"])
    theta_star = lam * np.linalg.solve(np.eye(24) - a_mat, a)
    mean, _ = model.family.mean_cov(model.state)
    np.testing.assert_allclose(mean[0], theta_star, atol=1e-8)
    np.testing.assert_allclose(mean[1], a_mat @ theta_star, atol=1e-8)


def test_dJq_changes_sign_at_strong_coupling():
    ref = mechanism_data()
    low, high = _theorem(ref, 0.3, 0.4)[0][1], _theorem(ref, 1.0, 0.4)[0][1]
    assert low > 0 > high


def test_analyze_cli(tmp_path, cli):
    done = cli("analyze", DATA / "default.toml", "--json", "--out", tmp_path)
    assert done.status == 0, done.err
    report = json.loads(done.out)
    assert report["converged"] and report["stable"]
    assert report["observed_rate"] == pytest.approx(report["spectral_radius"], rel=1e-3)
    assert len(report["influence"]) == 4 and len(report["parameters"]) == 4
    assert (tmp_path / "influence.png").stat().st_size > 0
    assert json.loads((tmp_path / "analysis.json").read_text())["models"] == report["models"]
    text = cli("analyze", RING, "--param", "tau:users_m0")
    assert text.status == 0 and "spectral radius" in text.out and "tau[users_m0]" in text.out
    bad = cli("analyze", RING, "--param", "tau:m0")
    assert bad.status == 2 and bad.err.startswith("error: --param 'tau:m0'")


def test_reproduce_cli_quick(tmp_path, cli):
    done = cli("reproduce", "two-model-conflict", "--quick", "--out", tmp_path)
    assert done.status == 0, done.err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) >= {f"A{i}" for i in range(1, 7)}
    for row in (summary[f"A{i}"] for i in range(1, 7)):
        assert {"Jp_base", "Jp_more_curation", "Jq_base", "Jq_more_curation", "influence"} <= set(row)
        assert row["Jp_base"] == pytest.approx(row["stable_point_Jp"], abs=1e-3)
    assert summary["A4"]["self_negative_influence"] is True     # more curation lowers theta's own alignment
    assert summary["A4"]["backfire"] == []                      # its one-round effect is already negative
    assert (tmp_path / "conflict.png").exists()


def test_full_covariance_gaussian_influence_matches_resolving():
    model = parse(random_gaussian_ecosystem(5, fixed=False)).build()
    result = an.analyze(model)
    assert result.jacobian_method == "numerical" and result.spectral_radius < 1
    for p, param in enumerate(result.influence.parameters):
        fd = an.influence_by_resolving(model, result.point, param, step=1e-4)
        np.testing.assert_allclose(result.influence.influence[:, p], fd, atol=1e-6 * max(1, np.abs(fd).max()))
