"""THEORY.md section 1, results 1-5, on random finite instances, through the real engine.

One categorical model curated by its own users, optionally with a share of real data:
a data-flow graph ``model -> users -> model`` (and ``data -> model``) run by
:class:`EcosystemModel` in population mode (exact) and, for the trends, sample mode.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax, xlogy

from ecosystem.core.curation import BestOfK, Curator, Luce, Tilt
from ecosystem.core.families import Categorical
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Ball, Reward, Tabular


def curated_loop(p0: np.ndarray, rule, reward: Reward, *, lam: float | None = None,
                 p_data: np.ndarray | None = None, coords: np.ndarray | None = None,
                 mode: str = "population", sample_size: int = 1000, seed: int = 0) -> EcosystemModel:
    """A model retrained on its own outputs curated by its users.

    Without ``lam``: pure curation (curated share 1). With ``lam``: real data share
    ``1 / (1 + lam)`` from a source ``p_data`` and curated share ``lam / (1 + lam)``.
    """
    g = nx.DiGraph()
    g.add_node("model", kind="model", moments=np.asarray(p0, dtype=float), sample_size=sample_size)
    g.add_node("users", kind="curator", curator=Curator(rule, [reward]))
    g.add_edge("model", "users")
    if lam is None:
        g.add_edge("users", "model", weight=1.0)
    else:
        g.add_node("data", kind="source", moments=np.asarray(p_data, dtype=float))
        g.add_edge("data", "model", weight=1.0 / (1.0 + lam))
        g.add_edge("users", "model", weight=lam / (1.0 + lam))
    coords = np.arange(len(p0), dtype=float) if coords is None else coords
    return EcosystemModel(g, Categorical(coords), mode=mode, rng=seed)


def kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(xlogy(p, p) - xlogy(p, q)))


def instance(seed: int, n: int, log_conc: float, reward_scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-reward_scale, reward_scale, size=n), rng.dirichlet(np.full(n, 10.0**log_conc))


SETTINGS = dict(deadline=None, database=None)

# --------------------------------------------------------------------------- result 1


@settings(max_examples=25, **SETTINGS)
@given(n=st.integers(2, 20), log_tau=st.floats(-0.7, 0.7), log_conc=st.floats(-1, 1),
       seed=st.integers(0, 2**32 - 1))
def test_result1_tilt_rule_is_kl_regularised_optimum(n, log_tau, log_conc, seed):
    r, p0 = instance(seed, n, log_conc, reward_scale=2.0)
    tau = 10.0**log_tau
    model = curated_loop(p0, Tilt(tau), Tabular(r))
    for t in range(1, 31):
        model.step()
        expected = softmax(np.log(p0) + t * r / tau)        # p_t ∝ p_0 exp(t r / tau)
        np.testing.assert_allclose(model.state[0], expected, rtol=1e-7, atol=1e-13, err_msg=f"round {t}")


# --------------------------------------------------------------------------- result 2


@settings(max_examples=30, **SETTINGS)
@given(n=st.integers(2, 20), K=st.integers(2, 8), log_conc=st.floats(-1, 1), ties=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_result2_luce_expected_exp_reward_increases(n, K, log_conc, ties, seed):
    r, p0 = instance(seed, n, log_conc, reward_scale=3.0)
    if ties:
        r = np.round(r)
    e = np.exp(r)
    model = curated_loop(p0, Luce(K, 1.0), Tabular(r))
    for t in range(12):
        p = model.state[0].copy()
        mean, var = p @ e, p @ (e - p @ e) ** 2
        model.step()
        gain = model.state[0] @ e - mean
        bound = (K - 1) / K * var / e.max()
        assert gain >= bound - 1e-10 * e.max(), f"round {t + 1}: gain {gain} < bound {bound}"
    # the reported alignment E_p[r] never falls either (H increases with r: p H dominates p)
    alignment = model.agents_frame()["alignment"].to_numpy()
    np.testing.assert_allclose(alignment[-1], model.state[0] @ r, rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(alignment) >= -1e-12), alignment


# --------------------------------------------------------------------------- result 3


@settings(max_examples=25, **SETTINGS)
@given(n=st.integers(2, 20), K=st.integers(2, 6), levels=st.integers(2, 5), log_conc=st.floats(-1, 1),
       seed=st.integers(0, 2**32 - 1))
def test_result3_mass_collapses_onto_top_level_set(n, K, levels, log_conc, seed):
    rng = np.random.default_rng(seed)
    r = rng.integers(0, levels, size=n).astype(float)
    top = r == r.max()
    # keep every outcome's initial mass >= 0.1 / n so that 80 rounds are plenty
    p0 = 0.9 * rng.dirichlet(np.full(n, 10.0**log_conc)) + 0.1 / n
    model = curated_loop(p0, Luce(K, 1.0), Tabular(r))
    mass = [p0[top].sum()]
    for t in range(80):
        model.step()
        p = model.state[0]
        mass.append(p[top].sum())
        # inside the top set the model keeps the shape of p_0
        np.testing.assert_allclose(p[top] / mass[-1], p0[top] / p0[top].sum(), rtol=1e-9,
                                   err_msg=f"round {t + 1}")
    assert np.all(np.diff(mass) >= -1e-12), "mass on the top level set decreased"
    assert mass[-1] > 1 - 1e-6, f"top-set mass only {mass[-1]} after 80 rounds"


def test_result3_top_set_is_a_ball():
    coords = np.linspace(-2.0, 2.0, 41)
    reward = Ball(center=np.array([0.5]), radius=0.6, gamma=2.0)
    inside = np.abs(coords - 0.5) <= 0.6 + 1e-12
    assert 5 < inside.sum() < 41
    p0 = np.random.default_rng(4).dirichlet(np.ones(41))
    model = curated_loop(p0, Luce(3, 0.5), reward, coords=coords)
    model.run(150)
    p = model.state[0]
    assert p[inside].sum() > 1 - 1e-6
    np.testing.assert_allclose(p[inside] / p[inside].sum(), p0[inside] / p0[inside].sum(), rtol=1e-8)
    # diversity (entropy) fell to the entropy of p_0 restricted to the ball
    q = p0[inside] / p0[inside].sum()
    np.testing.assert_allclose(model.model_agents[0].diversity, -np.sum(q * np.log(q)), atol=1e-5)


def test_result3_best_of_k_keeps_a_rare_best_outcome():
    p0 = np.array([0.5, 0.5, 1e-17])
    model = curated_loop(p0, BestOfK(2), Tabular(np.array([0.0, 1.0, 2.0])))
    model.run(200)
    assert model.state[0, 2] > 0.99


# --------------------------------------------------------------------------- results 4 and 5


def real_data_instance(n, K, frac, log_conc, seed):
    """Rewards, p_data and lam with lam (K - 1) = frac < 1."""
    r, p_data = instance(seed, n, log_conc, reward_scale=2.5)
    return r, p_data, frac / (K - 1)


@settings(max_examples=30, **SETTINGS)
@given(n=st.integers(2, 20), K=st.integers(2, 7), frac=st.floats(0.05, 0.95), log_tau=st.floats(-0.5, 0.5),
       best_of=st.booleans(), log_conc=st.floats(-1.3, 1), seed=st.integers(0, 2**32 - 1))
def test_result4_real_data_bounds_drift(n, K, frac, log_tau, best_of, log_conc, seed):
    r, p_data, lam = real_data_instance(n, K, frac, log_conc, seed)
    rule = BestOfK(K) if best_of else Luce(K, 10.0**log_tau)
    model = curated_loop(p_data, rule, Tabular(r), lam=lam, p_data=p_data)
    bound = -np.log(1 - lam * (K - 1))
    for t in range(40):
        model.step()
        p = model.state[0]
        assert kl(p, p_data) <= bound + 1e-12, f"round {t + 1}: KL {kl(p, p_data)} > {bound}"
        # the engine's drift metric is that KL
        np.testing.assert_allclose(model.model_agents[0].drift, kl(p, p_data), rtol=1e-9, atol=1e-15)
        # and the density ratio never exceeds 1 / (1 - lam (K - 1)), which is what bounds the KL
        assert np.all(p <= p_data / (1 - lam * (K - 1)) * (1 + 1e-9))
    assert model.model_agents[0].curation_ratio == pytest.approx(lam / (1 + lam))
    assert model.model_agents[0].real_share == pytest.approx(1 / (1 + lam))


@settings(max_examples=20, **SETTINGS)
@given(n=st.integers(2, 20), K=st.integers(2, 7), frac=st.floats(0.05, 0.95), log_conc=st.floats(-1.3, 1),
       seed=st.integers(0, 2**32 - 1))
def test_result5_real_data_keeps_reward_gain(n, K, frac, log_conc, seed):
    r, p_data, lam = real_data_instance(n, K, frac, log_conc, seed)
    e = np.exp(r)
    mean, var = p_data @ e, p_data @ (e - p_data @ e) ** 2
    bound = mean + lam * (K - 1) * var / ((1 + lam) ** 3 * K * e.max())
    model = curated_loop(p_data, Luce(K, 1.0), Tabular(r), lam=lam, p_data=p_data)
    # round 0 is p_data itself (the bound holds from round 1 on)
    for t in range(1, 61):
        model.step()
        got = model.state[0] @ e
        assert got >= bound - 1e-12 * e.max(), f"round {t}: E e^r = {got} < {bound}"
    # after many rounds the loop has settled, and still sits above the bound
    before = model.state[0].copy()
    model.run(60)
    assert np.abs(model.state[0] - before).max() < 1e-6
    assert model.state[0] @ e >= bound - 1e-12 * e.max()


# --------------------------------------------------------------------------- sample mode


@pytest.mark.parametrize("seed", [0, 1])
def test_sample_mode_pure_curation_raises_reward(seed):
    rng = np.random.default_rng(100 + seed)
    n, K = 8, 3
    r = rng.uniform(-1.5, 1.5, size=n)
    p0 = rng.dirichlet(np.full(n, 2.0))
    e = np.exp(r)
    pop = curated_loop(p0, Luce(K, 1.0), Tabular(r))
    sam = curated_loop(p0, Luce(K, 1.0), Tabular(r), mode="sample", sample_size=50_000, seed=seed)
    levels = [p0 @ e]
    for _ in range(5):
        pop.step()
        sam.step()
        levels.append(sam.state[0] @ e)
        assert sam.state[0].min() >= 0 and abs(sam.state[0].sum() - 1) < 1e-12
    # expected reward rises (every round, beyond the sampling noise) and tracks the exact loop
    assert np.all(np.diff(levels) > 0), levels
    assert abs(levels[-1] - pop.state[0] @ e) < 0.03 * (levels[-1] - levels[0])
    assert np.abs(sam.state[0] - pop.state[0]).max() < 0.03


@pytest.mark.parametrize("seed", [0, 1])
def test_sample_mode_real_data_stays_near_bounds(seed):
    rng = np.random.default_rng(200 + seed)
    n, K, lam = 8, 3, 0.4
    r = rng.permutation(np.linspace(-2.0, 2.0, n))
    p_data = rng.dirichlet(np.full(n, 2.0))
    e = np.exp(r)
    mean, var = p_data @ e, p_data @ (e - p_data @ e) ** 2
    bound = mean + lam * (K - 1) * var / ((1 + lam) ** 3 * K * e.max())
    sam = curated_loop(p_data, Luce(K, 1.0), Tabular(r), lam=lam, p_data=p_data, mode="sample",
                       sample_size=50_000, seed=seed)
    pop = curated_loop(p_data, Luce(K, 1.0), Tabular(r), lam=lam, p_data=p_data)
    sam.run(20)
    pop.run(20)
    p = sam.state[0]
    se = np.sqrt(p_data @ e**2 / 50_000)
    assert p @ e >= bound - 4 * se
    assert p @ e > mean + 4 * se                       # curation still pays
    assert kl(p, p_data) <= -np.log(1 - lam * (K - 1)) + 0.01
    assert abs(p @ e - pop.state[0] @ e) < 6 * se
    # the engine's drift column is the KL from the real data
    assert sam.agents_frame()["drift"].iloc[-1] == pytest.approx(kl(p, p_data), rel=1e-9)
