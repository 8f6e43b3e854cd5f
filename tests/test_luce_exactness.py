"""The Luce population operator is exact at every scale of ``r / tau`` (issue 18, item 5).

Reference: ``H(x) = E_{x_1..x_{K-1} ~ p}[K e(x) / (e(x) + sum_i e(x_i))]`` (THEORY.md section 1)
by exact enumeration of the multisets of the ``K - 1`` other candidates, in 50-digit decimal
arithmetic (``K / (1 + sum_i exp(rho_i - rho_x))``): independent of the operator's integral,
grid and floats, and exact for scores of any size.
"""

from __future__ import annotations

import decimal
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecosystem.core import curation
from ecosystem.core.curation import best_of_k_h, luce_dense_ok, luce_h, luce_h_banded

CTX = decimal.Context(prec=50, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def reference_h(p: np.ndarray, rho: np.ndarray, K: int) -> np.ndarray:
    """Exact ``H`` ``(n,)`` of one row ``p`` ``(n,)`` by enumerating the other K - 1 candidates."""
    n = len(p)
    P = [CTX.create_decimal(float(v)) for v in p]
    R = [CTX.create_decimal(float(v)) for v in rho]
    out = []
    for x in range(n):
        ratio = [CTX.exp(CTX.subtract(R[i], R[x])) for i in range(n)]
        total = decimal.Decimal(0)
        for combo in itertools.combinations_with_replacement(range(n), K - 1):
            counts = np.bincount(combo, minlength=n)
            weight = CTX.create_decimal(math.factorial(K - 1))
            denom = decimal.Decimal(1)
            for i, c in enumerate(counts):
                if c:
                    weight = CTX.divide(CTX.multiply(weight, CTX.power(P[i], int(c))), math.factorial(int(c)))
                    denom = CTX.add(denom, CTX.multiply(int(c), ratio[i]))
            total = CTX.add(total, CTX.divide(CTX.multiply(weight, K), denom))
        out.append(float(total))
    return np.array(out)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 5), K=st.integers(2, 5),
       log_scale=st.floats(-3, 17), shape=st.sampled_from(["spread", "clusters", "ties"]))
def test_luce_matches_exact_enumeration_at_every_scale(seed, n, K, log_scale, shape):
    """Random instances with ``|r / tau|`` from 1e-3 to 1e17: ``H`` within 1e-9 of the exact
    enumeration and ``sum p H = 1`` within 1e-9, whichever form (dense or banded) runs."""
    rng = np.random.default_rng(seed)
    scale = 10.0**log_scale
    r = rng.uniform(-2, 2, n)
    if shape == "clusters":   # two far-apart clusters of close scores
        r = np.where(rng.random(n) < 0.5, -2.0, 2.0) + rng.normal(size=n) / scale
    elif shape == "ties":
        r = np.round(r)
    rho = r * scale
    p = rng.dirichlet(np.ones(n))
    h = luce_h(p[None], rho, K)[0]
    np.testing.assert_allclose(h, reference_h(p, rho, K), rtol=0, atol=1e-9)
    assert abs(p @ h - 1.0) < 1e-9


@pytest.mark.parametrize("tau", [1e-3, 1e-6, 1e-12, 1e-15, 1e-16, 1e-17, 1e-100])
def test_issue_cases_sum_to_one_and_reach_best_of_k(tau):
    """The issue's cases (r in [-2, 2]): sum p H was 1.000032, 0.957 and 2.49 at tau = 1e-15,
    1e-16, 1e-17. Now exact, and for tau -> 0 the best-of-K operator itself."""
    rng = np.random.default_rng(3)
    r = np.linspace(-2, 2, 41)
    p = rng.dirichlet(np.ones(41), size=3)
    for K in (2, 4, 16):
        h = luce_h(p, r / tau, K)
        np.testing.assert_allclose((p * h).sum(axis=1), 1.0, rtol=0, atol=1e-9)
        if tau <= 1e-6:   # score gaps 0.1 / tau >> 1: exactly best-of-K
            np.testing.assert_allclose(h, best_of_k_h(p, r, K), rtol=1e-9, atol=1e-12)


def test_dense_and_banded_forms_agree_where_both_apply():
    """On scores the dense form resolves, the banded form gives the same ``H`` (to 1e-11)."""
    rng = np.random.default_rng(5)
    for scale in (0.1, 1.0, 30.0, 1e3):
        rho = rng.normal(size=200) * scale
        p = rng.dirichlet(np.ones(200), size=4)
        assert luce_dense_ok(rho, 4)
        np.testing.assert_allclose(luce_h_banded(p, rho, 4), luce_h(p, rho, 4), rtol=1e-10, atol=1e-11)


def test_banded_form_is_the_same_in_small_chunks():
    """Memory is bounded by the chunk; the result does not depend on it."""
    rng = np.random.default_rng(6)
    rho = np.r_[rng.normal(size=300) * 40, 1e9 + rng.normal(size=50), -1e15]
    p = rng.dirichlet(np.ones(rho.size), size=3)
    full = luce_h_banded(p, rho, 6)
    np.testing.assert_allclose(luce_h_banded(p, rho, 6, chunk=97), full, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose((p * full).sum(axis=1), 1.0, atol=1e-9)


def test_large_outcome_space_uses_bounded_memory():
    """n = 200,000 outcomes over a score range of 2e5: the dense basis would be
    n x ~1.3e6 (4 TiB); the banded form computes it in chunks, exactly."""
    rng = np.random.default_rng(7)
    rho = rng.uniform(-1e5, 1e5, 200_000)
    assert not luce_dense_ok(rho, 4)
    p = rng.dirichlet(np.ones(rho.size))[None]
    h = luce_h(p, rho, 4)
    assert abs((p * h).sum() - 1.0) < 1e-9
    assert np.all(np.isfinite(h)) and h.min() >= 0 and h.max() <= 4


def test_large_k_window():
    """K = 10,000: the band's right edge grows with log K; sum p H stays exact."""
    rng = np.random.default_rng(8)
    rho = rng.normal(size=30)
    p = rng.dirichlet(np.ones(30))[None]
    h = luce_h(p, rho, 10_000)
    assert abs((p * h).sum() - 1.0) < 1e-9


def test_ring_at_tiny_tau_reaches_the_best_of_k_limit():
    """The issue's ring at tau = 1e-17 ended at mean alignment -0.144 against -0.236 for
    best-of-K, its exact limit: now the two agree."""
    from ecosystem.formats.scenario import load

    def final(overrides):
        sc = load("ring", dict(overrides, steps=60))
        m = sc.build(mode="population")
        m.run(sc.steps)
        return m.ecosystem_frame()["mean_alignment"].iloc[-1]

    luce = final({"topology.curator.tau": 1e-17})
    best = final({"topology.curator.rule": "best_of_k"})
    assert luce == pytest.approx(best, abs=1e-9)
    assert curation.TIE_RTOL < 1e-9


def uniform_grid_h(p: np.ndarray, rho: np.ndarray, K: int, step: float, left: float, right: float) -> np.ndarray:
    """The Luce integral on a uniform trapezoid grid over ``[min rho - left, max rho + right]``
    (``step = 0.3``, ``left = 5``, ``right = 30``: the dense operator before the tail map)."""
    rho = rho - rho.max()
    s = np.arange(np.floor((rho.min() - left) / step), np.ceil(right / step) + 1) * step
    e = np.exp(np.minimum(rho[:, None] - s[None, :], 50.0))
    with np.errstate(divide="ignore"):
        weight = np.exp((K - 1) * np.log(p @ np.exp(-e)))
    return K * step * (weight @ (e * np.exp(-e)).T)


@pytest.mark.parametrize("spread", [0.01, 1.0, 5.0, 30.0])
def test_mapped_tail_matches_the_uniform_grid_with_fewer_nodes(spread):
    """The dense form's bent tail gives the uniform grid's ``H`` (to 2e-11 for K up to 100;
    a grid of step 0.02 over [rho - 8, rho + 60] agrees as well) on about 78 fewer nodes (131 ->
    55 for scores spread over 4)."""
    rng = np.random.default_rng(int(spread * 100))
    for K in (2, 4, 16, 100):
        rho = rng.uniform(-spread, spread, 150)
        p = rng.dirichlet(np.ones(150) * 0.5, size=3)
        h = luce_h(p, rho, K)
        np.testing.assert_allclose(h, uniform_grid_h(p, rho, K, 0.3, 5.0, 30.0), rtol=0, atol=2e-11)
        np.testing.assert_allclose(h, uniform_grid_h(p, rho, K, 0.02, 8.0, 60.0), rtol=0, atol=2e-11)
        np.testing.assert_allclose((p * h).sum(axis=1), 1.0, rtol=0, atol=1e-11)
    uniform = np.ceil(30.0 / 0.3) - np.floor((rho.min() - rho.max() - 5.0) / 0.3) + 1
    assert uniform - curation._grid_size(rho - rho.max()) >= 75


def test_mapped_tail_with_gaps_between_score_clusters():
    """Clusters far apart (gaps skipped by the grid): only the top run is bent; ``H`` is
    that of the uniform grid."""
    rng = np.random.default_rng(9)
    rho = np.r_[rng.normal(size=40), 80 + rng.normal(size=40), 200 + rng.normal(size=20)]
    p = rng.dirichlet(np.ones(rho.size), size=2)
    assert luce_dense_ok(rho, 4)
    np.testing.assert_allclose(luce_h(p, rho, 4), uniform_grid_h(p, rho, 4, 0.3, 5.0, 30.0), rtol=0, atol=1e-11)
    assert curation._grid_size(rho - rho.max()) == curation.luce_basis(rho)[0].shape[1]
