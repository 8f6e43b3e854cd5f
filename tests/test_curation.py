"""Population operators of ecosystem/curation.py against their definitions (THEORY.md section 1).

- mass conservation ``sum_x p(x) H(x) = 1`` and finiteness on random categorical instances;
- the population form agrees with Monte Carlo of the sampling form (``choose``);
- closed forms: Bradley-Terry (K = 2), the K -> infinity tilt limit, Gaussian tilts.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import gaussian_row
from hypothesis import given, settings
from hypothesis import strategies as st

from ecosystem.core.curation import (
    BestOfK,
    Curator,
    Luce,
    Tilt,
    best_of_k_h,
    luce_h,
    tilt_h,
)
from ecosystem.core.families import Gaussian
from ecosystem.core.rewards import FromCallable, Linear, Quadratic, Tabular

# --------------------------------------------------------------------------- helpers


def random_instance(seed: int, n: int, scale: float, concentration: float, ties: bool):
    """Rewards ``(n,)`` of the given scale (optionally with ties) and a Dirichlet ``p``."""
    rng = np.random.default_rng(seed)
    r = rng.normal(size=n) * scale
    if ties:
        r = np.round(r / scale) * scale          # a handful of distinct levels
    p = rng.dirichlet(np.full(n, concentration))
    return r, p


def monte_carlo_curation(curator: Curator, p: np.ndarray, tables: np.ndarray, draws: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Empirical distribution of the kept candidate in the sampling form.

    ``draws`` curated samples: each draws K candidates from ``p``, a random user type
    ``u ~ nu`` scores them with ``tables[u]`` and the rule's ``choose`` keeps one.
    """
    k = curator.rule.candidates
    cand = rng.choice(len(p), size=(draws, k), p=p)
    users = rng.choice(len(curator.weights), size=draws, p=curator.weights)
    scores = tables[users[:, None], cand]
    kept = cand[np.arange(draws), curator.rule.choose(scores, rng)]
    return np.bincount(kept, minlength=len(p)) / draws


def assert_matches_monte_carlo(exact: np.ndarray, empirical: np.ndarray, draws: int,
                               z: float = 5.0) -> None:
    se = np.sqrt(exact * (1 - exact) / draws) + 1e-12
    worst = np.max(np.abs(empirical - exact) / se)
    assert worst < z, f"population form off by {worst:.1f} standard errors:\n{exact}\n{empirical}"


params = dict(
    n=st.integers(2, 40),
    K=st.integers(2, 10),
    log_scale=st.floats(-2, 3),
    log_tau=st.floats(-2, 1),
    log_conc=st.floats(-1.5, 1),
    ties=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)

# --------------------------------------------------------------------------- mass, finiteness


@settings(max_examples=150, deadline=None, database=None)
@given(**params)
def test_operators_conserve_mass_and_stay_finite(n, K, log_scale, log_tau, log_conc, ties, seed):
    r, p = random_instance(seed, n, 10.0**log_scale, 10.0**log_conc, ties)
    tau = 10.0**log_tau
    rho = r / tau
    for name, h in (
        ("luce", luce_h(p, rho, K)),
        ("best_of_k", best_of_k_h(p, r, K)),
        ("tilt", tilt_h(p, rho)),
    ):
        assert h.shape == (1, n), name
        assert np.all(np.isfinite(h)), f"{name}: non-finite H {h}"
        if name != "best_of_k":
            assert np.all(h >= 0), f"{name}: negative H {h}"
        assert abs(float(p @ h[0]) - 1.0) < 1e-9, f"{name}: sum p H = {float(p @ h[0])!r}"
    if p.min() > 1e-9:      # see test_best_of_k_rare_outcomes for tinier masses
        h = best_of_k_h(p, r, K)[0]
        assert np.all(h >= 0) and np.all(h <= K * (1 + 1e-6))
        order = np.argsort(r, kind="stable")
        assert np.all(np.diff(h[order]) >= -1e-6 * K)
    h = luce_h(p, rho, K)[0]
    # 0 < H < K (H may round to K, or underflow to 0 when the reward spread is huge)
    assert np.all(h <= K * (1 + 1e-12))
    spread = rho.max() - rho.min()
    if spread < 20:
        assert np.all(h > 0)
    # H depends on x only through its reward, and increases with it
    order = np.argsort(rho, kind="stable")
    assert np.all(np.diff(h[order]) >= -1e-9 * K)


def test_batched_rows_equal_single_rows():
    rng = np.random.default_rng(3)
    rho = rng.normal(size=12) * 2
    rows = rng.dirichlet(np.ones(12), size=5)
    for op in (lambda q: luce_h(q, rho, 4), lambda q: best_of_k_h(q, rho, 4), lambda q: tilt_h(q, rho)):
        batched = op(rows)
        single = np.vstack([op(row) for row in rows])
        np.testing.assert_allclose(batched, single, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("big", [1e4, -1e4, 1e6])
@pytest.mark.parametrize("tau", [1.0, 0.01])
@pytest.mark.parametrize("K", [2, 7])
def test_extreme_rewards_no_nan(big, tau, K):
    r = np.array([0.0, big, 1.0, -3.0, big / 2])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.05])
    rho = r / tau
    top = int(np.argmax(r))
    for name, h in (("luce", luce_h(p, rho, K)), ("best_of_k", best_of_k_h(p, r, K)),
                    ("tilt", tilt_h(p, rho))):
        assert np.all(np.isfinite(h)), f"{name}: {h}"
        assert abs(float(p @ h[0]) - 1.0) < 1e-9, name
    if big > 0:
        # with such gaps the top outcome wins every race it enters: H(top) = (1 - (1-m)^K) / m
        m = p[top]
        expected = (1 - (1 - m) ** K) / m
        np.testing.assert_allclose(luce_h(p, rho, K)[0, top], expected, rtol=1e-9)
        np.testing.assert_allclose(best_of_k_h(p, r, K)[0, top], expected, rtol=1e-12)
        np.testing.assert_allclose(tilt_h(p, rho)[0, top], 1 / m, rtol=1e-9)
    else:
        # the bottom outcome is kept only when all K candidates are it: H = p^(K-1)
        bottom = int(np.argmin(r))
        expected = p[bottom] ** (K - 1)
        np.testing.assert_allclose(luce_h(p, rho, K)[0, bottom], expected, rtol=1e-9)
        np.testing.assert_allclose(best_of_k_h(p, r, K)[0, bottom], expected, rtol=1e-12)
    q = Curator(Luce(K, tau), [Tabular(r)]).curate(p, r[None])
    assert np.all(np.isfinite(q)) and abs(q.sum() - 1) < 1e-12


def test_k_equal_one_is_identity():
    p = np.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(luce_h(p, np.array([3.0, -1.0, 0.0]), 1), 1.0)
    np.testing.assert_allclose(best_of_k_h(p, np.array([3.0, -1.0, 0.0]), 1), 1.0)


# --------------------------------------------------------------------------- closed forms


@settings(max_examples=60, deadline=None, database=None)
@given(n=st.integers(2, 30), log_scale=st.floats(-2, 1.5), log_tau=st.floats(-1, 1),
       log_conc=st.floats(-1, 1), seed=st.integers(0, 2**32 - 1))
def test_luce_k2_is_bradley_terry(n, log_scale, log_tau, log_conc, seed):
    r, p = random_instance(seed, n, 10.0**log_scale, 10.0**log_conc, False)
    rho = r / 10.0**log_tau
    # H(x) = 2 sum_y p(y) e(x) / (e(x) + e(y)) = 2 sum_y p(y) sigmoid(rho(x) - rho(y))
    bt = 2 * (1 / (1 + np.exp(-(rho[:, None] - rho[None, :])))) @ p
    np.testing.assert_allclose(luce_h(p, rho, 2)[0], bt, rtol=1e-9, atol=1e-12)


def best_of_k_reference(p: np.ndarray, r: np.ndarray, K: int) -> np.ndarray:
    """``((b + m)^K - b^K) / m = sum_j (b + m)^j b^(K-1-j)`` per outcome, with exact sums."""
    out = np.empty(len(p))
    for x in range(len(p)):
        below = math.fsum(p[r < r[x]])
        top = math.fsum(p[r <= r[x]])
        out[x] = math.fsum(top**j * below ** (K - 1 - j) for j in range(K))
    return out


@settings(max_examples=40, deadline=None, database=None)
@given(n=st.integers(2, 20), K=st.integers(2, 10), log_conc=st.floats(-1, 1), ties=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_best_of_k_exact_formula(n, K, log_conc, ties, seed):
    r, p = random_instance(seed, n, 1.0, 10.0**log_conc, ties)
    # keep every mass >= 1e-8: see test_best_of_k_rare_outcomes for tinier ones
    p = np.maximum(p, 1e-8)
    p /= p.sum()
    np.testing.assert_allclose(best_of_k_h(p, r, K)[0], best_of_k_reference(p, r, K), rtol=1e-6)


def test_best_of_k_rare_outcomes():
    r = np.array([0.0, 1.0, 2.0])
    p = np.array([0.5, 0.5, 1e-18])
    np.testing.assert_allclose(best_of_k_h(p, r, 2)[0], best_of_k_reference(p, r, 2), rtol=1e-9)
    p = np.array([0.3, 1e-18, 0.7])
    np.testing.assert_allclose(best_of_k_h(p, r, 2)[0], best_of_k_reference(p, r, 2), rtol=1e-9)
    # Luce with a sharp temperature is the same race and gets these right
    np.testing.assert_allclose(luce_h(p, r * 100, 2)[0], [0.3, 0.6, 1.3], rtol=1e-9)
    # a Dirichlet draw whose best outcome has mass 2.6e-18: H(best) = -172.6 (exact ~2)
    rng = np.random.default_rng(0)
    r = rng.normal(size=18)
    p = rng.dirichlet(np.full(18, 10**-1.3125))
    assert np.all(best_of_k_h(p, r, 2) >= 0)


def test_luce_large_k_approaches_tilt():
    rng = np.random.default_rng(11)
    for _ in range(5):
        r = rng.normal(size=9) * 1.5
        p = rng.dirichlet(np.ones(9))
        tilt = (p * tilt_h(p, r))[0]
        ks = [2, 10, 100, 1000, 10000]
        tv = [0.5 * np.abs((p * luce_h(p, r, k))[0] - tilt).sum() for k in ks]
        assert all(a > b for a, b in itertools.pairwise(tv)), tv
        assert tv[-1] < 1e-3
        # the gap closes like 1/K
        assert 0.5 < (tv[-1] * ks[-1]) / (tv[-2] * ks[-2]) < 2.0


def test_tilt_curator_is_exponential_tilt():
    r = np.array([0.0, 1.0, 2.0, -1.0])
    p = np.array([0.4, 0.3, 0.2, 0.1])
    tau = 0.5
    q = Curator(Tilt(tau), [Tabular(r)]).curate(p, r[None])[0]
    expected = p * np.exp(r / tau)
    np.testing.assert_allclose(q, expected / expected.sum(), rtol=1e-12)


# --------------------------------------------------------------------------- sampling form


@pytest.mark.parametrize("seed,K,tau", [(0, 2, 1.0), (1, 3, 0.5), (2, 7, 2.0), (3, 5, 0.2)])
def test_luce_population_matches_monte_carlo(seed, K, tau):
    rng = np.random.default_rng(seed)
    n = 7
    r = rng.normal(size=n)
    p = rng.dirichlet(np.ones(n))
    curator = Curator(Luce(K, tau), [Tabular(r)])
    exact = curator.curate(p, r[None])[0]
    np.testing.assert_allclose(exact, p * luce_h(p, r / tau, K)[0], rtol=1e-12)
    draws = 200_000
    assert_matches_monte_carlo(exact, monte_carlo_curation(curator, p, r[None], draws, rng), draws)
    # and the curation actually does something (the test would not pass with H = 1)
    assert np.max(np.abs(exact - p)) > 10 * np.sqrt(0.25 / draws)


@pytest.mark.parametrize("seed,K", [(0, 2), (1, 4), (2, 9)])
def test_best_of_k_population_matches_monte_carlo_with_ties(seed, K):
    rng = np.random.default_rng(seed)
    r = np.array([0.0, 1.0, 1.0, 2.0, 2.0, 2.0, -1.0, 1.0])      # tied levels
    p = rng.dirichlet(np.ones(len(r)))
    curator = Curator(BestOfK(K), [Tabular(r)])
    exact = curator.curate(p, r[None])[0]
    draws = 200_000
    empirical = monte_carlo_curation(curator, p, r[None], draws, rng)
    assert_matches_monte_carlo(exact, empirical, draws)
    # ties split in proportion to p inside a level
    for level in (1.0, 2.0):
        idx = np.flatnonzero(r == level)
        np.testing.assert_allclose(exact[idx] / exact[idx].sum(), p[idx] / p[idx].sum(), rtol=1e-12)


@pytest.mark.parametrize("seed,rule", [(0, Luce(3, 1.0)), (1, Luce(6, 0.4)), (2, BestOfK(3))])
def test_heterogeneous_curator_matches_monte_carlo(seed, rule):
    rng = np.random.default_rng(seed)
    n = 6
    rewards = [Tabular(rng.normal(size=n) * 1.5) for _ in range(3)]
    if isinstance(rule, BestOfK):
        rewards = [Tabular(np.round(rw.values)) for rw in rewards]
    tables = np.stack([rw.values for rw in rewards])
    curator = Curator(rule, rewards, weights=np.array([0.5, 0.3, 0.2]) * 7)   # normalised
    np.testing.assert_allclose(curator.weights, [0.5, 0.3, 0.2])
    p = rng.dirichlet(np.ones(n))
    h = curator.h(p, tables)
    assert abs(float(p @ h[0]) - 1) < 1e-9
    exact = curator.curate(p, tables)[0]
    draws = 200_000
    assert_matches_monte_carlo(exact, monte_carlo_curation(curator, p, tables, draws, rng), draws)
    # a mixture of users is not one user holding the mean reward
    mean_user = Curator(rule, [Tabular(curator.weights @ tables)])
    other = mean_user.curate(p, (curator.weights @ tables)[None])[0]
    assert np.max(np.abs(other - exact)) > 10 * np.sqrt(0.25 / draws)


def test_choose_is_luce_choice_on_fixed_candidates():
    rng = np.random.default_rng(5)
    scores = np.array([0.0, 1.0, -0.5, 0.3])
    tau = 0.7
    curator = Curator(Luce(4, tau), [Tabular(scores)])
    draws = 200_000
    picks = curator.rule.choose(np.tile(scores, (draws, 1)), rng)
    e = np.exp(scores / tau)
    assert_matches_monte_carlo(e / e.sum(), np.bincount(picks, minlength=4) / draws, draws)
    best = BestOfK(4).choose(np.tile([1.0, 3.0, 3.0, 0.0], (draws, 1)), rng)
    freq = np.bincount(best, minlength=4) / draws
    assert freq[0] == 0 and freq[3] == 0
    assert_matches_monte_carlo(np.array([0.0, 0.5, 0.5, 0.0]), freq, draws)


# --------------------------------------------------------------------------- Gaussian family


def assert_close_whitened(mean_a, cov_a, mean_b, cov_b, ref_cov) -> None:
    """Means and covariances agree in the coordinates where ``ref_cov`` is I.

    Tolerances are those of 4096 fixed quasi-Monte-Carlo nodes: ~1e-3 in one dimension,
    a few 1e-2 on the covariance in three (measured on tilts of half a standard deviation).
    """
    d = ref_cov.shape[0]
    tol_mean, tol_cov = (2e-3, 5e-3) if d == 1 else (1e-2, 5e-2)
    inv_root = np.linalg.inv(np.linalg.cholesky(ref_cov))
    dm = inv_root @ (np.ravel(mean_a) - np.ravel(mean_b))
    dc = inv_root @ (np.squeeze(cov_a, 0) - np.squeeze(cov_b, 0)) @ inv_root.T
    assert np.max(np.abs(dm)) < tol_mean and np.max(np.abs(dc)) < tol_cov, (dm, dc)


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.3 * np.eye(d)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_gaussian_tilt_of_linear_reward_shifts_mean(dim):
    rng = np.random.default_rng(dim)
    fam = Gaussian(dim=dim)
    mu, cov = rng.normal(size=dim), random_spd(rng, dim)
    row = gaussian_row(fam, mu, cov)[None]
    g, tau = rng.normal(size=dim), 0.7
    curator = Curator(Tilt(tau), [Linear(g, offset=3.0)])
    mean_t, cov_t = fam.mean_cov(fam.curate(fam.judges(curator), row))
    np.testing.assert_allclose(mean_t[0], mu + cov @ g / tau, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov_t[0], cov, rtol=1e-10, atol=1e-12)
    # the quadrature path agrees (for a moderate tilt: half a standard deviation)
    g = g / np.sqrt(g @ cov @ g) * 0.5 * tau
    fast = fam.curate(fam.judges(Curator(Tilt(tau), [Linear(g)])), row)
    slow = fam.curate(fam.judges(Curator(Tilt(tau), [FromCallable(fn=Linear(g))])), row)
    (mean_t, cov_t), (mean_q, cov_q) = fam.mean_cov(fast), fam.mean_cov(slow)
    assert_close_whitened(mean_q, cov_q, mean_t, cov_t, cov)


@pytest.mark.parametrize("dim,seed", [(1, 0), (2, 1), (2, 2), (3, 3)])
def test_gaussian_quadratic_tilt_closed_form_and_quadrature(dim, seed):
    rng = np.random.default_rng(seed)
    fam = Gaussian(dim=dim)
    mu, cov = rng.normal(size=dim), random_spd(rng, dim)
    row = gaussian_row(fam, mu, cov)[None]
    g, c = rng.normal(size=dim), rng.normal(size=dim) * 0.5
    eta, tau = 0.8, 1.3
    reward = Quadratic(g=g, eta=eta, center=c)
    mean_t, cov_t = fam.mean_cov(fam.curate(fam.judges(Curator(Tilt(tau), [reward])), row))
    precision = np.linalg.inv(cov) + eta * np.eye(dim) / tau
    np.testing.assert_allclose(np.linalg.inv(cov_t[0]), precision, rtol=1e-9)
    expected_mean = np.linalg.solve(precision, np.linalg.solve(cov, mu) + (g + eta * c) / tau)
    np.testing.assert_allclose(mean_t[0], expected_mean, rtol=1e-9, atol=1e-12)
    # force the quadrature path, on a moderate tilt (mean moves by ~half a standard deviation)
    g = g / np.sqrt(g @ cov @ g) * 0.5 * tau
    reward = Quadratic(g=g, eta=0.3, center=np.zeros(dim))
    fast = fam.curate(fam.judges(Curator(Tilt(tau), [reward])), row)
    slow = fam.curate(fam.judges(Curator(Tilt(tau), [FromCallable(fn=reward)])), row)
    (mean_t, cov_t), (mean_q, cov_q) = fam.mean_cov(fast), fam.mean_cov(slow)
    assert_close_whitened(mean_q, cov_q, mean_t, cov_t, cov)
    # the tilt did change the covariance, by much more than the tolerance
    assert np.linalg.det(cov) / np.linalg.det(cov_t[0]) > 1.05


def test_gaussian_heterogeneous_tilt_is_mixture_of_tilts():
    fam = Gaussian(dim=1)
    row = gaussian_row(fam, [0.0], [[1.0]])[None]
    curator = Curator(Tilt(1.0), [Linear([2.0]), Linear([-2.0])], weights=np.array([0.5, 0.5]))
    mean, cov = fam.mean_cov(fam.curate(fam.judges(curator), row))
    # equal mixture of N(2, 1) and N(-2, 1): mean 0, variance 1 + 4
    np.testing.assert_allclose(mean[0], [0.0], atol=1e-12)
    np.testing.assert_allclose(cov[0], [[5.0]], rtol=1e-12)


def test_gaussian_best_of_two_is_max_of_two_normals():
    fam = Gaussian(dim=1)
    mu, sigma = 0.4, 1.7
    row = gaussian_row(fam, [mu], [[sigma**2]])[None]
    mean, cov = fam.mean_cov(fam.curate(fam.judges(Curator(BestOfK(2), [Linear([1.0])])), row))
    # E max(Z1, Z2) = 1 / sqrt(pi), Var max(Z1, Z2) = 1 - 1 / pi
    np.testing.assert_allclose(mean[0, 0], mu + sigma / np.sqrt(np.pi), atol=2e-3)
    np.testing.assert_allclose(cov[0, 0, 0], sigma**2 * (1 - 1 / np.pi), atol=5e-3)


@pytest.mark.parametrize("dim,K,tau,seed", [(1, 2, 1.0, 0), (1, 5, 0.5, 1), (2, 4, 0.7, 2)])
def test_gaussian_luce_quadrature_matches_monte_carlo(dim, K, tau, seed):
    rng = np.random.default_rng(seed)
    fam = Gaussian(dim=dim)
    mu, cov = rng.normal(size=dim), random_spd(rng, dim)
    reward = Quadratic(g=rng.normal(size=dim), eta=0.5, center=np.zeros(dim))
    curator = Curator(Luce(K, tau), [reward])
    mean_q, cov_q = fam.mean_cov(fam.curate(fam.judges(curator), gaussian_row(fam, mu, cov)[None]))
    draws = 200_000
    x = rng.multivariate_normal(mu, cov, size=(draws, K))
    scores = reward(x.reshape(-1, dim)).reshape(draws, K)
    kept = x[np.arange(draws), curator.rule.choose(scores, rng)]
    mean_mc = kept.mean(axis=0)
    cov_mc = np.atleast_2d(np.cov(kept.T))
    se_mean = kept.std(axis=0) / np.sqrt(draws)
    assert np.all(np.abs(mean_q[0] - mean_mc) < 5 * se_mean + 2e-3), (mean_q, mean_mc)
    se_cov = np.sqrt(2 / draws) * np.sqrt(np.outer(np.diag(cov_mc), np.diag(cov_mc)))
    assert np.all(np.abs(cov_q[0] - cov_mc) < 5 * se_cov + 3e-3), (cov_q, cov_mc)
    # curation moved the distribution well beyond the tolerance
    assert np.max(np.abs(mean_q[0] - mu)) > 0.05


def test_gaussian_quadrature_strong_tilt_is_accurate():
    fam = Gaussian(dim=1)
    row = gaussian_row(fam, [0.0], [[1.0]])[None]
    mean, cov = fam.mean_cov(fam.curate(fam.judges(Curator(Tilt(1.0), [FromCallable(fn=Linear([2.0]))])), row))
    # exact: N(2, 1)
    np.testing.assert_allclose(mean[0, 0], 2.0, atol=1e-2)
    np.testing.assert_allclose(cov[0, 0, 0], 1.0, atol=1e-2)
