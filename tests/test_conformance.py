"""The learned-model protocol stands on its own: a model in plain numpy passes the conformance
suite end to end (engine run included), and broken models are rejected with a named failure."""

from __future__ import annotations

import numpy as np
import pytest

from ecosystem.core.learned import GenerativeModel
from ecosystem.learned.conformance import check


class PlainGaussian:
    """A full-covariance Gaussian: weighted maximum likelihood, samples through the Cholesky factor."""

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.chol: np.ndarray | None = None

    def fit(self, samples: np.ndarray, weights: np.ndarray | None, rng: np.random.Generator) -> None:
        w = np.full(len(samples), 1.0 / len(samples)) if weights is None else weights / np.sum(weights)
        self.mean = w @ samples
        centred = samples - self.mean
        cov = (centred * w[:, None]).T @ centred + 1e-9 * np.eye(samples.shape[1])
        self.chol = np.linalg.cholesky(cov)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean + rng.standard_normal((n, len(self.mean))) @ self.chol.T

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        z = np.linalg.solve(self.chol, (x - self.mean).T)
        d = len(self.mean)
        return -0.5 * (z * z).sum(axis=0) - np.log(np.diag(self.chol)).sum() - 0.5 * d * np.log(2 * np.pi)

    def parameters(self) -> np.ndarray:
        return np.concatenate([self.mean, (self.chol @ self.chol.T).ravel()])


class IgnoresRng(PlainGaussian):
    def sample(self, n, rng):
        return super().sample(n, np.random.default_rng())


class WrongShape(PlainGaussian):
    def sample(self, n, rng):
        return super().sample(n + 1, rng)


class Integers(PlainGaussian):
    def sample(self, n, rng):
        return np.rint(super().sample(n, rng)).astype(int)


class FirstFitOnly(PlainGaussian):
    def fit(self, samples, weights, rng):
        if self.mean is None:
            super().fit(samples, weights, rng)


class FitIsRandom(PlainGaussian):
    def fit(self, samples, weights, rng):
        super().fit(samples, weights, rng)
        self.mean = self.mean + np.random.default_rng().normal(size=self.mean.shape)


class MisreadsWeights(PlainGaussian):
    def fit(self, samples, weights, rng):
        super().fit(samples if weights is None else samples * 2, weights, rng)


class GrowingParameters(PlainGaussian):
    fits = 0

    def fit(self, samples, weights, rng):
        super().fit(samples, weights, rng)
        self.fits += 1

    def parameters(self):
        return np.zeros(self.fits)


class NoFit:
    def sample(self, n, rng):
        return rng.standard_normal((n, 2))


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.multivariate_normal([1.0, -2.0, 0.5], [[1.0, 0.6, 0.0], [0.6, 2.0, 0.3], [0.0, 0.3, 0.5]], 400)


def test_a_plain_numpy_model_passes_the_whole_suite(data):
    assert isinstance(PlainGaussian(), GenerativeModel)
    check(PlainGaussian, data)
    check(PlainGaussian, data, seed=7)


@pytest.mark.parametrize(("model", "message"), [
    (NoFit, "lacks sample"),
    (IgnoresRng, "equal rngs gave different samples"),
    (WrongShape, r"returned shape \(2001, 3\), expected \(2000, 3\)"),
    (Integers, "expected floats"),
    (FitIsRandom, "two fresh models fit with equal rngs"),
    (FirstFitOnly, "does not follow the data"),
    (MisreadsWeights, "equal weights differs"),
    (GrowingParameters, "changed length"),
])
def test_broken_models_are_rejected_naming_the_failure(data, model, message):
    with pytest.raises(AssertionError, match=f"conformance: .*{message}"):
        check(model, data)


def test_bad_data_is_refused():
    with pytest.raises(AssertionError, match="data must be"):
        check(PlainGaussian, np.zeros(10))
