"""Learned models in the engine (ecosystem.core.learned): agreement with the built-in Gaussian
family, retention, determinism, threads, events and the sample-based metrics."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from ecosystem.core.curation import Curator, Luce
from ecosystem.core.families import Gaussian
from ecosystem.core.learned import Dataset, Learned, sliced_wasserstein
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Linear


class MLEGaussian:
    """A full-covariance Gaussian fit by maximum likelihood (plain numpy); records its training sizes."""

    def __init__(self) -> None:
        self.mean = self.chol = None
        self.sizes: list[int] = []

    def fit(self, samples: np.ndarray, weights: np.ndarray | None, rng: np.random.Generator) -> None:
        self.sizes.append(len(samples))
        self.mean = samples.mean(axis=0)
        cov = np.cov(samples.T, ddof=0).reshape(samples.shape[1], -1)
        self.chol = np.linalg.cholesky(cov + 1e-12 * np.eye(len(cov)))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean + rng.standard_normal((n, len(self.mean))) @ self.chol.T

    def parameters(self) -> np.ndarray:
        return np.r_[self.mean, self.chol.ravel()]


class Normal:
    """A fixed standard normal source in ``d`` dimensions (never refit)."""

    def __init__(self, d: int) -> None:
        self.d = d

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((n, self.d))


REWARD = Linear(np.array([1.0, 0.0]))


def one_model_graph(source_row, model_row, retention: str = "replace", size: int = 400) -> nx.DiGraph:
    """Model A: 30% real data, 30% its own raw outputs, 40% its own outputs curated (Luce K=4)."""
    g = nx.DiGraph()
    g.add_node("real", kind="source", moments=source_row)
    g.add_node("A", kind="model", moments=model_row, sample_size=size, retention=retention)
    g.add_node("users", kind="curator", curator=Curator(Luce(4, 1.0), [REWARD]))
    g.add_edge("A", "users")
    g.add_edge("real", "A", weight=0.3)
    g.add_edge("A", "A", weight=0.3)
    g.add_edge("users", "A", weight=0.4)
    return g


def learned_model(seed: int, retention: str = "replace", workers: int = 1, **kw) -> EcosystemModel:
    fam = Learned(MLEGaussian, dim=2, init_size=200_000, eval_size=400, workers=workers)
    src = fam.add(Normal(2))
    return EcosystemModel(one_model_graph(src, src.copy(), retention, **kw), fam, mode="sample", rng=seed)


def test_learned_gaussian_agrees_with_the_built_in_family_in_distribution():
    """The same loop with a Gaussian written as a learned model and with the built-in family
    (sample mode): final means and variances agree within sampling error over seeds."""
    fam = Gaussian(2)
    row = fam.moments(np.zeros((1, 2)), np.eye(2)[None])[0]
    learned, built_in = [], []
    for seed in range(24):
        m = learned_model(seed)
        m.run(6)
        obj = m.family.of(m.state[0])
        learned.append(np.r_[obj.mean, np.diag(obj.chol @ obj.chol.T)])
        b = EcosystemModel(one_model_graph(row, row.copy()), fam, mode="sample", rng=seed)
        b.run(6)
        mean, cov = b.gaussian_parameters()
        built_in.append(np.r_[mean[0], np.diag(cov[0])])
    learned, built_in = np.array(learned), np.array(built_in)
    se = np.sqrt(learned.var(axis=0, ddof=1) / len(learned) + built_in.var(axis=0, ddof=1) / len(built_in))
    assert built_in[:, 0].mean() > 0.3          # curation moved the mean: the comparison is not vacuous
    assert np.all(np.abs(learned.mean(axis=0) - built_in.mean(axis=0)) < 4 * se + 1e-3)


def test_same_seed_same_numbers_and_fit_processes_change_nothing():
    frames = []
    for workers in (1, 1, 2):
        m = learned_model(3, workers=workers, size=200)
        m.run(4)
        frames.append(m.agents_frame())
    assert frames[0].equals(frames[1]) and frames[0].equals(frames[2])
    other = learned_model(4, size=200)
    other.run(4)
    assert not other.agents_frame().equals(frames[0])


@pytest.mark.parametrize(("retention", "sizes"), [
    ("replace", [100, 100, 100]), ("subsample", [100, 100, 100]), ("accumulate", [100, 200, 300]),
])
def test_retention_sets_the_training_set(retention, sizes):
    m = learned_model(0, retention, size=100)
    m.run(3)
    assert m.family.of(m.state[0]).sizes[1:] == sizes     # the first fit is the initial one


def test_a_run_leaves_the_family_it_was_given_reusable():
    fam = Learned(MLEGaussian, dim=2, init_size=500, eval_size=100)
    src = fam.add(Normal(2))
    g = one_model_graph(src, src.copy(), size=100)
    first = EcosystemModel(g.copy(), fam, mode="sample", rng=1)
    first.run(3)
    assert len(fam.objects) == 1                  # the run's models live in its own copy
    again = EcosystemModel(g.copy(), fam, mode="sample", rng=1)
    again.run(3)
    assert first.agents_frame().equals(again.agents_frame())


def test_population_mode_is_refused():
    fam = Learned(MLEGaussian, dim=2)
    src = fam.add(Normal(2))
    with pytest.raises(ValueError, match="sample mode"):
        EcosystemModel(one_model_graph(src, src.copy()), fam, mode="population")


def test_metrics_are_the_evaluation_draws_statistics():
    m = learned_model(0, size=100)
    m.run(2)
    x = m.family.evaluation(m.state)[0]
    scores = REWARD(x)
    assert m.measures["alignment"][0] == pytest.approx(scores.mean(), rel=1e-12)
    assert m.measures["alignment_se"][0] == pytest.approx(scores.std(ddof=1) / np.sqrt(len(x)), rel=1e-12)
    assert m.measures["diversity"][0] == pytest.approx(np.trace(np.cov(x.T)), rel=1e-12)
    assert 0 < m.measures["change"][0] < 1
    frame = m.agents_frame()
    assert list(frame.columns)[-1] == "alignment_se" and len(frame) == 3


def test_common_random_numbers_make_equal_models_measure_equal():
    fam = Learned(MLEGaussian, dim=2, init_size=300, eval_size=200)
    src = fam.add(Dataset(np.random.default_rng(0).standard_normal((500, 2))))
    g = one_model_graph(src, src.copy(), size=100)
    g.add_node("B", kind="model", moments=src.copy(), sample_size=100)
    g.add_edge("real", "B", weight=1.0)
    m = EcosystemModel(g, fam, mode="sample", rng=0)
    a, b = (m.family.of(r) for r in m.state)
    b.mean, b.chol = a.mean.copy(), a.chol.copy()
    m.family._cache.clear()
    np.testing.assert_array_equal(*m.family.evaluation(m.state))


def test_sliced_wasserstein_is_the_mean_of_exact_one_dimensional_distances():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((300, 3)), rng.standard_normal((300, 3)) + np.array([0.5, 0, 0])
    u = rng.standard_normal((16, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    want = np.mean([wasserstein_distance(a @ d, b @ d) for d in u])
    assert sliced_wasserstein(a, b, u) == pytest.approx(want, rel=1e-12)
    assert sliced_wasserstein(a, a, u) == 0.0


def test_events_copy_a_learned_model_and_change_shares():
    m = learned_model(0, size=100)
    m.run(1)
    m.apply("set_curation_ratio", "A", 0.2)
    m.run(1)
    assert m.curation_ratios[0] == pytest.approx(0.2)
    assert np.isfinite(m.measures["alignment"]).all()


def test_bad_samples_are_named():
    class Wrong(MLEGaussian):
        def sample(self, n, rng):
            return np.zeros((n, 3))

    fam = Learned(Wrong, dim=2, init_size=50)
    src = fam.add(Normal(2))
    with pytest.raises(Exception, match=r"Wrong: sample\(\d+\) returned shape"):
        EcosystemModel(one_model_graph(src, src.copy()), fam, mode="sample", rng=0)

