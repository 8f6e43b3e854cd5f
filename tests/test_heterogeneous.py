"""THEORY.md section 3: heterogeneous curators and an anchor share of reference data.

``p_{t+1} = alpha p_ref + (1 - alpha) p_t E_u[H_{p_t, r_u}]``, run by the engine in population mode.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from ecosystem.core.curation import Curator, Luce, Tilt, luce_h
from ecosystem.core.families import Categorical
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Tabular

SETTINGS = dict(deadline=None, database=None)


def anchored_loop(starts, curator: Curator, p_ref=None, alpha: float = 0.0) -> EcosystemModel:
    """One model per row of ``starts``, each curated by its own users (one shared Curator)."""
    starts = np.atleast_2d(np.asarray(starts, dtype=float))
    g = nx.DiGraph()
    if alpha > 0:
        g.add_node("reference", kind="source", moments=np.asarray(p_ref, dtype=float))
    for i, p0 in enumerate(starts):
        g.add_node(f"model{i}", kind="model", moments=p0)
        g.add_node(f"users{i}", kind="curator", curator=curator)
        g.add_edge(f"model{i}", f"users{i}")
        g.add_edge(f"users{i}", f"model{i}", weight=1.0 - alpha)
        if alpha > 0:
            g.add_edge("reference", f"model{i}", weight=alpha)
    return EcosystemModel(g, Categorical(np.arange(starts.shape[1], dtype=float)), mode="population", rng=0)


def tilt_fixed_point(p_ref: np.ndarray, r: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """``p*`` and ``Z*`` of THEORY.md section 3 (K -> infinity, tau = 1)."""
    e = np.exp(r)
    low = (1 - alpha) * e.max()

    def excess(z: float) -> float:
        return float(np.sum(alpha * p_ref / (1 - (1 - alpha) * e / z)) - 1)

    hi = low + 1.0
    while excess(hi) > 0:
        hi *= 2
    z = brentq(excess, low * (1 + 1e-14), hi, xtol=1e-15, rtol=1e-15)
    p_star = alpha * p_ref / (1 - (1 - alpha) * e / z)
    # brentq leaves |sum p* - 1| ~ 1e-12 where the pole makes the sum steep in Z
    assert abs(p_star.sum() - 1) < 1e-9
    return p_star / p_star.sum(), z


@settings(max_examples=15, **SETTINGS)
@given(n=st.integers(2, 20), alpha=st.floats(0.15, 0.9), log_conc=st.floats(-0.5, 1),
       seed=st.integers(0, 2**32 - 1))
def test_tilt_with_anchor_converges_geometrically_to_closed_form(n, alpha, log_conc, seed):
    rng = np.random.default_rng(seed)
    r = rng.uniform(-2, 2, size=n)
    p_ref = rng.dirichlet(np.full(n, 10.0**log_conc))
    assume(p_ref.min() > 1e-12)
    p_star, z_star = tilt_fixed_point(p_ref, r, alpha)
    e = np.exp(r)
    # Z* is the unique constant above (1 - alpha) max e^r, and it is E_{p*}[e^r]
    assert z_star > (1 - alpha) * e.max()
    assert np.all(p_star > 0)
    np.testing.assert_allclose(p_star @ e, z_star, rtol=1e-9)
    # local rate: the Jacobian on the simplex has spectral radius <= (1 - alpha) max e^r / Z*
    rate = (1 - alpha) * e.max() / z_star
    assume(rate < 0.88)
    # from any start: random, a point mass (on the worst outcome), the reference itself
    starts = np.stack([rng.dirichlet(np.ones(n)), np.eye(n)[np.argmin(r)], p_ref])
    model = anchored_loop(starts, Curator(Tilt(1.0), [Tabular(r)]), p_ref, alpha)
    errors = [np.abs(model.state - p_star).sum(axis=1)]
    rounds = int(np.ceil(np.log(1e-12) / np.log(rate + 0.02))) + 30
    for _ in range(rounds):
        model.step()
        errors.append(np.abs(model.state - p_star).sum(axis=1))
    errors = np.array(errors)
    assert np.all(errors[-1] < 1e-10), f"still {errors[-1]} from p* after {rounds} rounds"
    # geometric: past a transient, every 10 rounds shrink the error by (rate + 0.03)^10 at least
    for start in range(3):
        err = errors[:, start]
        for t in range(30, rounds - 10):
            if err[t + 10] < 1e-11:
                break
            assert err[t + 10] <= err[t] * (rate + 0.03) ** 10, f"start {start}, round {t}: {err[t:t + 11]}"
    # and p* is a fixed point of the engine
    stay = anchored_loop(p_star, Curator(Tilt(1.0), [Tabular(r)]), p_ref, alpha)
    stay.step()
    np.testing.assert_allclose(stay.state[0], p_star, rtol=1e-10, atol=1e-15)


def objective(p: np.ndarray, tables: np.ndarray, nu: np.ndarray) -> float:
    """``sum_u nu_u log E_p[e^{r_u}]``."""
    return float(nu @ np.log(np.exp(tables) @ p))          # rewards here are in [-2, 2]


@settings(max_examples=20, **SETTINGS)
@given(n=st.integers(2, 20), users=st.integers(2, 5), log_conc=st.floats(-1, 1), seed=st.integers(0, 2**32 - 1))
def test_heterogeneous_tilt_ascends_mean_log_partition(n, users, log_conc, seed):
    rng = np.random.default_rng(seed)
    tables = rng.uniform(-2, 2, size=(users, n))
    nu = rng.dirichlet(np.ones(users))
    curator = Curator(Tilt(1.0), [Tabular(t) for t in tables], weights=nu)
    p0 = rng.dirichlet(np.full(n, 10.0**log_conc))
    model = anchored_loop(p0, curator)
    values = [objective(p0, tables, nu)]
    for _ in range(60):
        model.step()
        values.append(objective(model.state[0], tables, nu))
    steps = np.diff(values)
    assert np.all(steps >= -1e-12 * max(1.0, abs(values[-1]))), f"objective fell: {values}"
    # the update is p' = p * grad F (the EM step for mixture weights): check it literally once
    p = model.state[0].copy()
    z = np.exp(tables) @ p
    expected = p * (nu @ (np.exp(tables) / z[:, None]))
    model.step()
    np.testing.assert_allclose(model.state[0], expected / expected.sum(), rtol=1e-9, atol=1e-15)
    # unless p0 already maximises F (gradient sum_u nu_u e^{r_u}/Z_u <= 1 everywhere), F rose
    z0 = np.exp(tables) @ p0
    if (nu @ (np.exp(tables) / z0[:, None])).max() > 1 + 1e-6:
        assert values[-1] > values[0]


def test_several_users_are_not_their_mean_reward():
    # two opposed users: averaging their rewards gives a flat reward (no change), while
    # averaging their curations pushes mass to both ends
    n = 9
    x = np.linspace(-1, 1, n)
    tables = np.stack([2 * x, -2 * x])
    p0 = np.full(n, 1 / n)
    mixed = anchored_loop(p0, Curator(Tilt(1.0), [Tabular(t) for t in tables], weights=np.array([0.5, 0.5])))
    mean_user = anchored_loop(p0, Curator(Tilt(1.0), [Tabular(tables.mean(axis=0))]))
    mixed.run(20)
    mean_user.run(20)
    np.testing.assert_allclose(mean_user.state[0], p0, rtol=1e-12)
    assert mixed.state[0][[0, -1]].sum() > 0.5
    np.testing.assert_allclose(mixed.state[0], mixed.state[0][::-1], rtol=1e-9)
    assert objective(mixed.state[0], tables, np.array([0.5, 0.5])) > objective(p0, tables, np.array([0.5, 0.5]))


def test_luce_heterogeneous_anchor_step_matches_formula():
    rng = np.random.default_rng(8)
    n, alpha, K, tau = 12, 0.3, 4, 0.8
    tables = rng.normal(size=(3, n))
    nu = np.array([0.2, 0.5, 0.3])
    p_ref, p0 = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    model = anchored_loop(p0, Curator(Luce(K, tau), [Tabular(t) for t in tables], weights=nu), p_ref, alpha)
    p = p0
    for _ in range(5):
        h = sum(w * luce_h(p, t / tau, K)[0] for w, t in zip(nu, tables, strict=True))
        curated = p * h / (p @ h)
        p = alpha * p_ref + (1 - alpha) * curated
        model.step()
        np.testing.assert_allclose(model.state[0], p, rtol=1e-10, atol=1e-15)
