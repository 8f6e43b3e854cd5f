"""The conditional linear-Gaussian family ``y | x ~ N(W x + b, S)``: closed forms checked against
independent computations (least squares on weighted samples, importance-weighted tilts, Monte
Carlo rewards), sample mode converging to population mode, and scenario files through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from ecosystem.core import rounds
from ecosystem.core.conditional_gaussian import ConditionalGaussian
from ecosystem.core.curation import BestOfK, Curator, Luce, Tilt
from ecosystem.core.families import Gaussian
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Ball, Linear, Quadratic, Reward
from ecosystem.errors import FlowError, ScenarioError
from ecosystem.formats.scenario import parse


@dataclass(eq=False)
class FullQuadratic(Reward):
    """``r(z) = g.z - z^T Q z / 2 + c`` with any symmetric ``Q`` (cross terms between x and y)."""

    g: np.ndarray
    q: np.ndarray
    c: float = 0.0
    name: str = "full_quadratic"

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(z)
        return z @ self.g - 0.5 * np.einsum("mi,ij,mj->m", z, self.q, z) + self.c

    def quadratic_form(self) -> tuple[np.ndarray, np.ndarray]:
        return self.g, self.q


def spd(rng: np.random.Generator, n: int, floor: float = 0.2) -> np.ndarray:
    a = rng.normal(size=(n, n))
    return 0.5 * a @ a.T + floor * np.eye(n)


def random_rows(fam: ConditionalGaussian, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([
        fam.rows(rng.normal(size=(1, fam.dx)), spd(rng, fam.dx)[None], rng.normal(size=(1, fam.dy, fam.dx)),
                 rng.normal(size=(1, fam.dy)), spd(rng, fam.dy)[None])
        for _ in range(n)])


FAM = ConditionalGaussian(2, 2)
REWARD = FullQuadratic(np.array([0.5, -0.3, 1.0, 0.4]),
                       np.array([[0.4, 0.1, 0.2, -0.1], [0.1, 0.3, 0.0, 0.15],
                                 [0.2, 0.0, 0.6, 0.1], [-0.1, 0.15, 0.1, 0.5]]), c=0.7)


# --------------------------------------------------------------------------- rows and statistics


def test_row_layout_and_round_trips():
    rows = random_rows(FAM, 3)
    assert FAM.width == 4 + 16 and FAM.n_in == 2 + 4 and rows.shape == (3, FAM.width)
    assert np.all(rows[:, -FAM.dx * FAM.dy:] == 0)                       # the padding
    np.testing.assert_allclose(FAM.fit(FAM.pair_statistics(rows, rows), rows, rows), rows, atol=1e-12)
    np.testing.assert_array_equal(FAM.unpack(FAM.pack(rows), rows), rows)
    assert FAM.pack(rows).shape == (3, 4 + 2 + 3)
    assert ConditionalGaussian(2, 2, noise="fixed").pack(rows).shape == (3, 6)
    with pytest.raises(ValueError, match="noise"):
        ConditionalGaussian(1, 1, noise="diag")


def test_pair_statistics_are_the_joint_moments_of_sampled_pairs():
    """Inputs from another row's domain, answers from the producer: the statistics are the pairs'
    moments ``[E z, E z z^T]`` (checked on 4e5 sampled pairs) and are linear in the domain."""
    rows = random_rows(FAM, 2, seed=1)
    rng = np.random.default_rng(2)
    n = 400_000
    inputs = FAM.draw_inputs(rows, np.ones(n, dtype=np.int64), rng)            # domain of row 1
    z = FAM.sample_given(rows, np.zeros(n, dtype=np.int64), inputs, rng)       # answers of row 0
    np.testing.assert_array_equal(z[:, :2], inputs)
    empirical = FAM.normalise(FAM.empirical(z, np.zeros(n, dtype=np.int64), 1), np.array([float(n)]))
    exact = FAM.pair_statistics(rows[:1], rows[1:])
    np.testing.assert_allclose(empirical, exact, atol=0.03 * np.abs(exact).max())
    mixed = 0.3 * rows[:1] + 0.7 * rows[1:]     # a mixture of the domains' moments
    np.testing.assert_allclose(FAM.pair_statistics(rows[:1], mixed),
                               0.3 * FAM.pair_statistics(rows[:1], rows[:1]) + 0.7 * exact, atol=1e-12)


def test_refit_is_weighted_least_squares_on_a_weighted_sample():
    """``fit`` of the weighted statistics of a sample equals ``np.linalg.lstsq`` on the
    sqrt-weighted design ``[x, 1]``, and ``S`` is the weighted residual covariance."""
    rows = random_rows(FAM, 3, seed=3)
    rng = np.random.default_rng(4)
    n = 60_000
    which = rng.integers(0, 3, n)
    inputs = FAM.draw_inputs(rows, (which + 1) % 3, rng)            # inputs from another node's domain
    z = FAM.sample_given(rows, which, inputs, rng)
    w = rng.uniform(0.1, 2.0, n) * np.array([0.5, 0.2, 0.3])[which]
    stats = FAM.empirical(z, np.zeros(n, dtype=np.int64), 1, weights=w)
    fitted = FAM.fit(FAM.normalise(stats, np.array([w.sum()])), rows[:1], rows[:1])
    x, y = z[:, :2], z[:, 2:]
    design = np.concatenate([x, np.ones((n, 1))], axis=1) * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(design, y * np.sqrt(w)[:, None], rcond=None)
    resid = y - np.concatenate([x, np.ones((n, 1))], axis=1) @ coef
    domain, slope, offset, noise = FAM.split(fitted)
    np.testing.assert_allclose(slope[0], coef[:2].T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(offset[0], coef[2], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(noise[0], (resid * w[:, None]).T @ resid / w.sum(), rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(domain, rows[:1, :FAM.n_in])              # the domain stays


def test_population_refit_is_the_regression_under_the_training_mixture():
    """The fit of a weighted sum of edge statistics is the least-squares line of a large sample of
    that mixture (each edge: its inputs' domain, its producer's answers)."""
    rows = random_rows(FAM, 3, seed=5)
    share = np.array([0.5, 0.3, 0.2])
    src, inp = np.array([0, 1, 2]), np.array([0, 0, 1])                    # e.g. consumer / producer inputs
    mix = (share[:, None] * FAM.pair_statistics(rows[src], rows[inp])).sum(axis=0, keepdims=True)
    fitted = FAM.fit(mix, rows[:1], rows[:1])
    rng = np.random.default_rng(6)
    n = 400_000
    edge = rng.choice(3, size=n, p=share)
    z = FAM.sample_given(rows, src[edge], FAM.draw_inputs(rows, inp[edge], rng), rng)
    design = np.concatenate([z[:, :2], np.ones((n, 1))], axis=1)
    coef, *_ = np.linalg.lstsq(design, z[:, 2:], rcond=None)
    _, slope, offset, _ = FAM.split(fitted)
    np.testing.assert_allclose(slope[0], coef[:2].T, atol=0.02)
    np.testing.assert_allclose(offset[0], coef[2], atol=0.02)


def test_unidentified_slope_keeps_the_previous_one():
    """Training inputs on a line (singular covariance): the slope across the line is the previous
    model's; along it, and the offset, come from the data."""
    fam = ConditionalGaussian(2, 1)
    line = np.array([[1.0, 0.0], [0.0, 0.0]])
    teacher = fam.rows(np.array([[0.5, 2.0]]), line[None], np.array([[[1.5, -1.0]]]), np.array([[0.3]]),
                       np.array([[[0.2]]]))
    previous = fam.rows(np.zeros((1, 2)), np.eye(2)[None], np.array([[[0.0, 4.0]]]), np.zeros((1, 1)),
                        np.eye(1)[None])
    fitted = fam.fit(fam.pair_statistics(teacher, teacher), previous, previous)
    _, slope, offset, noise = fam.split(fitted)
    np.testing.assert_allclose(slope[0], [[1.5, 4.0]], atol=1e-9)
    # at every training input (x2 = 2) the fitted answer is the teacher's
    np.testing.assert_allclose(slope[0] @ [0.5, 2.0] + offset[0], teacher[0, 6:8] @ [0.5, 2.0] + 0.3, atol=1e-9)
    np.testing.assert_allclose(noise[0], [[0.2]], atol=1e-9)
    point = fam.rows(np.array([[1.0, 1.0]]), np.zeros((1, 2, 2)), np.array([[[1.0, 1.0]]]), np.zeros((1, 1)),
                     np.eye(1)[None])
    np.testing.assert_allclose(fam.split(fam.fit(fam.pair_statistics(point, point), previous, previous))[1],
                               fam.split(previous)[1])                     # a point-mass domain: all kept


def test_fixed_noise_keeps_the_initial_covariance():
    fam = ConditionalGaussian(2, 2, noise="fixed")
    rows = random_rows(fam, 2, seed=7)
    fitted = fam.fit(fam.pair_statistics(rows[1:], rows[:1]), rows[:1], rows[:1])
    np.testing.assert_array_equal(fam.split(fitted)[3], fam.split(rows[:1])[3])
    np.testing.assert_allclose(fam.split(fitted)[1], fam.split(rows[1:])[1], atol=1e-10)


# --------------------------------------------------------------------------- curation


@pytest.mark.parametrize("x0", [[0.0, 0.0], [1.2, -0.7], [-2.0, 1.0]])
def test_tilt_is_the_importance_weighted_answer_at_each_input(x0):
    """The tilted conditional at an input equals answers to that input re-weighted by
    ``exp(r(x, y) / tau)`` (brute force, 10^6 answers)."""
    rows = random_rows(FAM, 1, seed=8)
    tau = 1.5
    cur = FAM.curate(FAM.judges(Curator(Tilt(tau), [REWARD])), rows)
    np.testing.assert_array_equal(cur[:, :FAM.n_in], rows[:, :FAM.n_in])   # the domain stays
    rng = np.random.default_rng(9)
    n = 1_000_000
    z = FAM.sample_given(rows, np.zeros(n, dtype=np.int64), np.tile(x0, (n, 1)), rng)
    log_w = REWARD(z) / tau
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    mean = w @ z[:, 2:]
    cov = (z[:, 2:] - mean).T @ ((z[:, 2:] - mean) * w[:, None])
    _, slope, offset, noise = FAM.split(cur)
    np.testing.assert_allclose(slope[0] @ x0 + offset[0], mean, atol=0.01)
    np.testing.assert_allclose(noise[0], cov, atol=0.01)


def test_tilt_matches_the_gaussian_tilt_of_the_joint_with_a_fixed_input():
    """Independent closed form: tilt the joint Gaussian of ``(x, y)`` by the reward and condition
    on ``x``; the tilted conditional is the family's."""
    rows = random_rows(FAM, 2, seed=10)
    tau = 0.8
    cur = FAM.curate(FAM.judges(Curator(Tilt(tau), [REWARD])), rows)
    joint = Gaussian(4)
    tilted = joint.curate(joint.judges(Curator(Tilt(tau), [REWARD])), FAM.pair_statistics(rows, rows))
    mean, cov = joint.mean_cov(tilted)
    slope = cov[:, 2:, :2] @ np.linalg.inv(cov[:, :2, :2])
    _, w, b, s = FAM.split(cur)
    np.testing.assert_allclose(w, slope, atol=1e-9)
    np.testing.assert_allclose(b, mean[:, 2:] - np.einsum("vij,vj->vi", slope, mean[:, :2]), atol=1e-9)
    np.testing.assert_allclose(s, cov[:, 2:, 2:] - slope @ cov[:, :2, 2:], atol=1e-9)


def test_users_of_one_curvature_mix_exactly():
    """Two user types with rewards of one curvature: the curated row's statistics on any domain are
    the users' mixture of their own tilts' statistics (what a least-squares fit sees)."""
    rows = random_rows(FAM, 2, seed=11)
    up, down = Quadratic(np.array([0.0, 0.0, 1.0, 0.5]), 0.4), Quadratic(np.array([0.3, 0.0, -1.0, 0.0]), 0.4)
    both = Curator(Tilt(1.0), [up, down], np.array([0.3, 0.7]))
    mixed = FAM.curate(FAM.judges(both), rows)
    other = random_rows(FAM, 2, seed=12)                                     # some other domains
    want = sum(nu * FAM.pair_statistics(FAM.curate(FAM.judges(Curator(Tilt(1.0), [r])), rows), other)
               for nu, r in zip(both.weights, both.rewards, strict=True))
    np.testing.assert_allclose(FAM.pair_statistics(mixed, other), want, atol=1e-10)
    apart = Curator(Tilt(1.0), [up, Quadratic(np.zeros(4), 2.0)])
    with pytest.raises(FlowError, match="slopes"):
        FAM.curate(FAM.judges(apart), rows)


@pytest.mark.parametrize("rule", [Luce(3, 1.0), BestOfK(2)])
def test_population_mode_refuses_choice_rules(rule):
    rows = random_rows(FAM, 1)
    assert not FAM.tilts_exactly(Curator(rule, [REWARD]))
    with pytest.raises(FlowError, match='mode = "sample"'):
        FAM.curate(FAM.judges(Curator(rule, [REWARD])), rows)
    assert not FAM.tilts_exactly(Curator(Tilt(1.0), [Ball(np.zeros(4), 1.0)]))


def self_curated_graph(fam: ConditionalGaussian, row: np.ndarray, cur: Curator, n: int) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node("m", kind="model", moments=row, sample_size=n)
    g.add_node("users", kind="curator", curator=cur)
    g.add_edge("m", "users")
    g.add_edge("users", "m", weight=1.0)
    return g


def test_best_of_k_candidates_answer_the_same_input():
    """Sample mode, best of 2 by ``r = y``: the kept answer is the larger of two answers to one input,
    so the slope stays, the offset rises by ``sqrt(S / pi)`` and the variance shrinks by ``1 - 1/pi``
    (mismatched inputs would change the slope)."""
    fam = ConditionalGaussian(1, 1)
    row = fam.rows(np.zeros((1, 1)), np.full((1, 1, 1), 4.0), np.full((1, 1, 1), 1.5), np.zeros((1, 1)),
                   np.full((1, 1, 1), 0.5))
    g = self_curated_graph(fam, row[0], Curator(BestOfK(2), [Linear(np.array([0.0, 1.0]))]), 200_000)
    model = EcosystemModel(g, fam, mode="sample", rng=3)
    model.step()
    _, w, b, s = fam.split(model.state)
    assert abs(w[0, 0, 0] - 1.5) < 0.01
    assert abs(b[0, 0] - np.sqrt(0.5 / np.pi)) < 0.01
    assert abs(s[0, 0, 0] - 0.5 * (1 - 1 / np.pi)) < 0.01


# --------------------------------------------------------------------------- metrics and analysis


def test_expected_reward_closed_form_and_on_other_domains():
    rows = random_rows(FAM, 3, seed=13)
    rng = np.random.default_rng(14)
    n = 200_000
    closed = FAM.expected_reward(rows, REWARD)
    joint = Gaussian(4).expected_reward(FAM.pair_statistics(rows, rows), REWARD)
    np.testing.assert_allclose(closed, joint, rtol=1e-10)
    table = FAM.alignment_on(rows, REWARD, rows[:, :FAM.n_in])
    np.testing.assert_allclose(np.diag(table), closed, rtol=1e-10)
    for i in range(3):
        for j in range(3):
            z = FAM.sample_given(rows, np.full(n, i), FAM.draw_inputs(rows, np.full(n, j), rng), rng)
            r = REWARD(z)
            assert abs(table[i, j] - r.mean()) < 5 * r.std() / np.sqrt(n)
    ball = Ball(np.zeros(4), 1.0)                     # no closed form: quasi-Monte-Carlo on the joint
    z = FAM.sample(rows, np.zeros(n, dtype=np.int64), rng)
    assert abs(FAM.expected_reward(rows[:1], ball)[0] - ball(z).mean()) < 0.01
    np.testing.assert_allclose(FAM.alignment_on(rows, ball, rows[:, :FAM.n_in]).diagonal(),
                               FAM.expected_reward(rows, ball), rtol=1e-12)
    np.testing.assert_allclose(FAM.expected_rewards(rows, [REWARD, ball])[:, 0], closed)


@pytest.mark.parametrize("noise", ["full", "fixed"])
def test_reward_gradient_is_the_derivative_of_the_expected_reward(noise):
    fam = ConditionalGaussian(2, 2, noise=noise)
    rows = random_rows(fam, 1, seed=15)
    theta = fam.pack(rows)[0]
    grad = fam.reward_gradient(rows[0], REWARD)
    h = 1e-6
    numeric = [(fam.expected_reward(fam.unpack((theta + h * e)[None], rows), REWARD)[0]
                - fam.expected_reward(fam.unpack((theta - h * e)[None], rows), REWARD)[0]) / (2 * h)
               for e in np.eye(theta.size)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    assert fam.reward_gradient(rows[0], Ball(np.zeros(4))) is None


def test_diversity_drift_and_divergence():
    rows = random_rows(FAM, 3, seed=16)
    s = FAM.split(rows)[3]
    div = FAM.diversity(rows)
    np.testing.assert_allclose(div["diversity"], np.trace(s, axis1=1, axis2=2))
    np.testing.assert_allclose(div["log_det"], np.linalg.slogdet(s)[1])
    np.testing.assert_allclose(FAM.drift(rows, rows), 0.0, atol=1e-6)
    # drift: the root mean over the domain of W2^2 between the answers at each input
    rng = np.random.default_rng(17)
    x = FAM.draw_inputs(rows, np.zeros(200_000, dtype=np.int64), rng)
    _, w, b, _ = FAM.split(rows)
    gap = (x @ (w[0] - w[1]).T + b[0] - b[1])
    answers = Gaussian(2)
    bures = answers.drift(answers.moments(np.zeros((1, 2)), s[:1]), answers.moments(np.zeros((1, 2)), s[1:2]))[0]
    want = np.sqrt(np.mean(np.sum(gap ** 2, axis=1)) + bures ** 2)
    assert abs(FAM.drift(rows[:1], rows[1]) - want) < 0.01 * want
    # pairwise divergence: the O(N) formula equals the mean over pairs, on the pooled domain
    pooled = rows[:, :FAM.n_in].mean(axis=0)
    m, m2 = pooled[:2], pooled[2:].reshape(2, 2)

    def root(a: np.ndarray) -> np.ndarray:
        vals, vecs = np.linalg.eigh(a)
        return vecs @ np.diag(np.sqrt(vals)) @ vecs.T

    pairs = []
    for i in range(3):
        for j in range(i + 1, 3):
            dw, db = w[i] - w[j], b[i] - b[j]
            pairs.append(np.trace(dw @ m2 @ dw.T) + 2 * db @ dw @ m + db @ db + np.sum((root(s[i]) - root(s[j])) ** 2))
    assert abs(FAM.pairwise_divergence(rows) - np.mean(pairs)) < 1e-9 * max(1.0, np.mean(pairs))
    assert FAM.pairwise_divergence(rows[:1]) == 0.0


def test_admissible_and_difference_step():
    rows = random_rows(FAM, 2)
    assert FAM.admissible(rows)
    theta = FAM.pack(rows)
    theta[0, 6] = -1.0                                 # a negative noise variance
    assert not FAM.admissible(FAM.unpack(theta, rows))
    assert FAM.difference_step(rows[0], 6, 0.01, 1.0) == 0.005
    assert FAM.difference_step(rows[0], 0, 3.0, 1e-5) == pytest.approx(3e-5)


# --------------------------------------------------------------------------- the kernel, both modes


def two_model_graph(fam: ConditionalGaussian, sample_size: int) -> nx.DiGraph:
    """Models A and B with their own domains: a third real answers at their own inputs, a third self,
    a sixth self-curated and a sixth the other's curated answers on the other's domain."""
    def row(mean, var, w, b, s):
        return fam.rows(np.array([[mean]]), np.array([[[var]]]), np.array([[[w]]]), np.array([[b]]),
                        np.array([[[s]]]))[0]

    g = nx.DiGraph()
    g.add_node("real", kind="source", moments=row(0.0, 1.0, 1.0, 0.0, 0.5))
    g.add_node("A", kind="model", moments=row(-1.0, 0.5, 0.8, 0.0, 0.6), sample_size=sample_size)
    g.add_node("B", kind="model", moments=row(1.5, 0.3, 1.2, 0.2, 0.4), sample_size=sample_size)
    users = {"A": Quadratic(np.array([0.0, 1.0]), 0.5), "B": Quadratic(np.array([0.3, -1.0]), 0.5)}
    for m in ("A", "B"):
        g.add_node(f"c{m}", kind="curator", curator=Curator(Tilt(1.0), [users[m]]))
        g.add_edge(m, f"c{m}")
    for m, other in (("A", "B"), ("B", "A")):
        g.add_edge("real", m, weight=1 / 3, inputs="consumer")
        g.add_edge(m, m, weight=1 / 3)
        g.add_edge(f"c{m}", m, weight=1 / 6)
        g.add_edge(f"c{other}", m, weight=1 / 6)          # inputs: the producer's (the other's) domain
    return g


def test_sample_round_converges_to_the_population_round():
    """One round from the same rows: the sampled refit's error to the exact one shrinks like
    ``1 / sqrt(n)`` (RMS over 24 seeds for n = 400, 4000, 40000)."""
    fam = ConditionalGaussian(1, 1)
    exact = None
    errors = []
    sizes = [400, 4000, 40_000]
    for n in sizes:
        kernel = rounds.RoundKernel(two_model_graph(fam, n), fam)
        start = np.stack([kernel._graph.nodes[m]["moments"] for m in kernel.models])
        state = rounds.RoundState.start(start)
        if exact is None:
            exact = fam.pack(rounds.advance(kernel, state, mode="population", order="synchronous").rows)
        sq = [np.sum((fam.pack(rounds.advance(kernel, state, mode="sample", order="synchronous",
                                              rng=np.random.default_rng(seed)).rows) - exact) ** 2)
              for seed in range(24)]
        errors.append(np.sqrt(np.mean(sq)))
    scaled = np.array(errors) * np.sqrt(sizes)
    assert errors[0] > errors[1] > errors[2]
    assert scaled.max() < 2.0 * scaled.min(), (errors, scaled)


def test_same_seed_same_numbers_and_inputs_stay_put():
    fam = ConditionalGaussian(1, 1)
    runs = []
    for _ in range(2):
        model = EcosystemModel(two_model_graph(fam, 500), fam, mode="sample", rng=11)
        model.run(3)
        runs.append(model.agents_frame())
    pd.testing.assert_frame_equal(*runs)
    model = EcosystemModel(two_model_graph(fam, 500), fam, mode="population")
    start = model.state.copy()
    model.run(3)
    np.testing.assert_array_equal(model.state[:, :fam.n_in], start[:, :fam.n_in])   # domains never move


@pytest.mark.parametrize("mode", ["population", "sample"])
@pytest.mark.parametrize("retention", ["accumulate", "subsample"])
def test_retention_partial_retraining_and_sequential_order_run(mode, retention):
    """Retained statistics (or reservoirs of pairs), partial refits through pack/unpack and
    sequential updates all run; a partial refit lies between the old row and the full refit."""
    fam = ConditionalGaussian(1, 1)
    g = two_model_graph(fam, 300)
    for m in ("A", "B"):
        g.nodes[m]["retention"] = retention
    for order in ("synchronous", "sequential"):
        model = EcosystemModel(g, fam, mode=mode, order=order, rng=2)
        model.run(3)
        assert np.isfinite(model.state).all() and fam.admissible(model.state)
    full = EcosystemModel(two_model_graph(fam, 300), fam)
    half = two_model_graph(fam, 300)
    half.nodes["A"]["retraining_rate"] = 0.5
    part = EcosystemModel(half, fam)
    start = fam.pack(part.state)
    full.step()
    part.step()
    np.testing.assert_allclose(fam.pack(part.state)[0], 0.5 * (start[0] + fam.pack(full.state)[0]), atol=1e-12)


# --------------------------------------------------------------------------- scenario files and the CLI

SCENARIO = """
name = "cg_two"
seed = 1
steps = 5
mode = "population"

[space]
family = "conditional_gaussian"
dx = 1
dy = 1

[rewards.up]
kind = "quadratic"
g = [0.0, 1.0]
eta = 0.5

[rewards.down]
kind = "quadratic"
g = [0.0, -1.0]
eta = 0.5

[sources.real]
input_mean = 0.0
input_var = 1.0
weights = 1.0
noise_var = 0.5

[models.A]
init = { input_mean = -1.0, input_var = 0.5, weights = 0.8, noise_var = 0.6 }
sample_size = 2000

[models.B]
init = { input_mean = 1.5, input_var = 0.3, weights = [[1.2]], offset = 0.2, noise_cov = [[0.4]] }
sample_size = 2000

[curators.cA]
curates = "A"
rule = "tilt"
reward = "up"

[curators.cB]
curates = "B"
rule = "tilt"
reward = "down"

[[flows]]
from = "real"
to = "A"
weight = 0.4
inputs = "consumer"

[[flows]]
from = "cA"
to = "A"
weight = 0.3

[[flows]]
from = "cB"
to = "A"
weight = 0.3

[[flows]]
from = "real"
to = "B"
weight = 0.4
inputs = "consumer"

[[flows]]
from = "cB"
to = "B"
weight = 0.3

[[flows]]
from = "cA"
to = "B"
weight = 0.3
"""


def scenario_dict() -> dict:
    import tomllib

    return tomllib.loads(SCENARIO)


def test_scenario_parses_the_space_and_distributions():
    spec = parse(scenario_dict())
    fam = spec.family
    assert isinstance(fam, ConditionalGaussian) and (fam.dx, fam.dy, fam.noise) == (1, 1, "full")
    b = spec.graph.nodes["B"]["moments"]
    np.testing.assert_allclose(b, fam.rows(np.array([[1.5]]), np.array([[[0.3]]]), np.array([[[1.2]]]),
                                           np.array([[0.2]]), np.array([[[0.4]]]))[0])
    assert spec.graph.edges["cB", "A"].get("inputs") is None                  # the producer's domain
    data = scenario_dict()
    data["models"]["A"]["init"]["input_cov"] = [[1.0]]
    with pytest.raises(ScenarioError, match="input_cov or input_var"):
        parse(data)
    data = scenario_dict()
    data["sources"]["real"]["weights"] = [1.0, 2.0]
    with pytest.raises(ScenarioError, match="weights: must have shape 1x1"):
        parse(data)
    data = scenario_dict()
    data["pools"] = {"web": {}}
    data["flows"] += [{"from": "A", "to": "web", "weight": 1.0}]
    with pytest.raises(ScenarioError, match="no pools"):
        parse(data)


def test_luce_curators_run_in_sample_mode_only():
    import tomllib

    luce = parse(tomllib.loads(SCENARIO.replace('rule = "tilt"', 'rule = "luce"\nK = 3')))
    model = luce.build(mode="sample")
    model.run(2)
    assert np.isfinite(model.state).all()
    with pytest.raises(FlowError, match='use mode = "sample"'):
        luce.build(mode="population").step()


def test_run_and_analyze_through_the_cli(tmp_path):
    """``ecosystem run`` in both modes and ``ecosystem analyze``, as processes (run side by side)."""
    path = tmp_path / "two.toml"
    path.write_text(SCENARIO)
    command = [sys.executable, "-m", "ecosystem"]
    calls = {mode: [*command, "run", str(path), "--out", str(tmp_path / mode), "--mode", mode, "--quiet"]
             for mode in ("population", "sample")} | {"analyze": [*command, "analyze", str(path), "--json"]}
    procs = {k: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
             for k, c in calls.items()}
    done = {k: (p.communicate(timeout=300), p.returncode) for k, p in procs.items()}
    for k, ((_, err), status) in done.items():
        assert status == 0, (k, err)
    for mode in ("population", "sample"):
        summary = json.loads((tmp_path / mode / "summary.json").read_text())
        assert summary["family"] == "conditional_gaussian"
        domains = pd.read_csv(tmp_path / mode / "domain_alignment.csv")
        assert set(domains["domain"]) == {"A", "B"} and domains["alignment"].notna().all()
        agents = pd.read_csv(tmp_path / mode / "agents.csv")
        assert agents[["alignment", "diversity", "drift"]].notna().all().all()
    report = json.loads(done["analyze"][0][0])
    assert report["converged"] and report["stable"] and report["models"] == ["A", "B"]
    assert all(np.isfinite(v) for row in report["influence"] for v in row)
