"""scikit-learn estimators as :class:`~ecosystem.core.learned.GenerativeModel` objects.

scikit-learn is the optional extra ``learned``: it is imported when an adapter is built
(:func:`require`), never when this module is. Every random draw of ``sample`` comes from the
given ``rng`` (the estimators' own ``sample`` and ``random_state`` are not used for it); a
fit's randomness (k-means initialisation, resampling by weight) comes from the fit's ``rng``.

- :class:`GaussianMixtureModel` (``gaussian_mixture``) and :class:`BayesianMixtureModel`
  (``bayesian_mixture``): mixtures, warm-started from the previous fit, optionally in the
  latent space of a :class:`~sklearn.decomposition.PCA` front end;
- :class:`KernelDensityModel` (``kernel_density``): a weighted Gaussian kernel density.

The ``space`` argument (the dataset the models live on) is used when building only, so that
copying a model never copies the data.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import ClassVar

import numpy as np

from ecosystem.core.learned import Dataset
from ecosystem.errors import ScenarioError
from ecosystem.learned._checks import at_least, one_of, positive

COVARIANCES = ("full", "diag", "spherical", "tied")


def require(what: str, module: str = "sklearn") -> ModuleType:
    """The scikit-learn module ``module``, or a :class:`ScenarioError` saying that ``what``
    (e.g. ``"learned model 'gaussian_mixture'"``) needs the ``learned`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ScenarioError(f"{what} needs scikit-learn: pip install 'ecosystem[learned]'") from None


def probabilities(weights: np.ndarray | None, m: int) -> np.ndarray | None:
    """``weights`` ``(m,)`` normalised to sum to 1, or None when they are None or all equal."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float)
    if w.shape != (m,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {m} finite values >= 0 with a positive sum")
    return None if w.max() - w.min() <= 1e-12 * w.max() else w / w.sum()


def resample(samples: np.ndarray, weights: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """``samples`` ``(m, d)`` as equally weighted rows: themselves when ``weights`` ``(m,)`` are None
    or all equal, else ``m`` rows drawn with replacement in proportion to ``weights``."""
    p = probabilities(weights, len(samples))
    return samples if p is None else samples[rng.choice(len(samples), size=len(samples), p=p)]


def _not_fitted(model: object) -> RuntimeError:
    return RuntimeError(f"{type(model).__name__}: fit it before sampling or asking for its parameters")


class _Mixture:
    """A Gaussian mixture of ``components`` components (covariance type ``covariance``), warm
    started from its previous fit (``max_iter`` EM steps at most, tolerance ``tol``, ``reg_covar``
    added to the covariances' diagonals).

    ``latent > 0``: the mixture lives in the ``latent``-dimensional space of a PCA fit on the first
    fit's data and then kept fixed; ``sample`` returns decoded samples (data space) and
    ``log_prob`` the *latent* log density of the encoded points. The estimators take no sample
    weights: a fit with unequal ``weights`` fits on the samples resampled by weight (:func:`resample`).
    """

    name: ClassVar[str]
    estimator_class: ClassVar[str]
    """The class in :mod:`sklearn.mixture`."""

    def __init__(self, components: int = 1, covariance: str = "full", latent: int = 0, max_iter: int = 100,
                 tol: float = 1e-3, reg_covar: float = 1e-6, space: Dataset | None = None) -> None:
        at_least("components", components, 1)
        one_of("covariance", covariance, COVARIANCES)
        at_least("latent", latent, 0)
        if space is not None and latent > space.data.shape[1]:
            raise ValueError(f"latent: at most the data's dimension {space.data.shape[1]}, got {latent}")
        at_least("max_iter", max_iter, 1)
        self.covariance, self.latent = covariance, latent
        mixture = getattr(require(f"learned model '{self.name}'", "sklearn.mixture"), self.estimator_class)
        self.estimator = mixture(n_components=components, covariance_type=covariance, warm_start=True,
                                 max_iter=max_iter, tol=positive("tol", tol),
                                 reg_covar=positive("reg_covar", reg_covar))
        self.pca = None
        self._scale: np.ndarray | None = None    # (k, l) standard deviations: diag, spherical
        self._chol: np.ndarray | None = None     # (k, l, l) or tied (l, l) Cholesky factors: full, tied

    def fit(self, samples: np.ndarray, weights: np.ndarray | None, rng: np.random.Generator) -> None:
        """Refit on ``samples`` ``(m, d)`` (``weights`` ``(m,)`` or None), warm started after the first fit."""
        x = resample(np.asarray(samples, dtype=float), weights, rng)
        if self.latent and self.pca is None:
            decomposition = require(f"learned model '{self.name}'", "sklearn.decomposition")
            self.pca = decomposition.PCA(self.latent, svd_solver="full").fit(x)
        z = x if self.pca is None else self.pca.transform(x)
        self.estimator.set_params(random_state=int(rng.integers(2**32)))
        self.estimator.fit(z)
        cov = self.estimator.covariances_
        if self.covariance in ("diag", "spherical"):
            self._scale = np.sqrt(np.broadcast_to(cov.reshape(len(cov), -1), self.estimator.means_.shape))
        else:
            self._chol = np.linalg.cholesky(cov)

    def _check_fitted(self) -> None:
        if self._scale is None and self._chol is None:
            raise _not_fitted(self)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples ``(n, d)``: components drawn by weight, then Gaussian noise through each
        component's Cholesky factor (one product per component), decoded when latent."""
        self._check_fitted()
        means = self.estimator.means_
        which = rng.choice(len(means), size=n, p=self.estimator.weights_)
        z = rng.standard_normal((n, means.shape[1]))
        if self._scale is not None:
            noise = self._scale[which] * z
        elif self._chol.ndim == 2:
            noise = z @ self._chol.T
        else:
            noise = np.empty_like(z)
            for k, factor in enumerate(self._chol):
                mine = which == k
                noise[mine] = z[mine] @ factor.T
        y = means[which] + noise
        return y if self.pca is None else self.pca.inverse_transform(y)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density ``(m,)`` of points ``x`` ``(m, d)``; with a PCA front end, the latent
        density of the encoded points (nats, latent units)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        return self.estimator.score_samples(x if self.pca is None else self.pca.transform(x))

    def parameters(self) -> np.ndarray:
        """Weights, means and covariances (latent space) as one vector of fixed length."""
        self._check_fitted()
        e = self.estimator
        return np.concatenate([e.weights_, e.means_.ravel(), np.ravel(e.covariances_)])


class GaussianMixtureModel(_Mixture):
    """:class:`sklearn.mixture.GaussianMixture` (maximum likelihood by EM); see :class:`_Mixture`."""

    name = "gaussian_mixture"
    estimator_class = "GaussianMixture"


class BayesianMixtureModel(_Mixture):
    """:class:`sklearn.mixture.BayesianGaussianMixture` (variational, Dirichlet-process weights: unused
    components shrink away); see :class:`_Mixture`."""

    name = "bayesian_mixture"
    estimator_class = "BayesianGaussianMixture"


class KernelDensityModel:
    """A Gaussian kernel density on the training samples (weighted by ``weights``).

    ``bandwidth``: the kernel's standard deviation (data units); None: 5% of the width of the
    space's bounds (1.0 without bounds). Sampling picks a training point by weight and adds
    ``bandwidth`` times standard normal noise. No ``parameters()``: the model is its data.
    """

    name = "kernel_density"

    def __init__(self, bandwidth: float | None = None, space: Dataset | None = None) -> None:
        if bandwidth is None:
            bounds = None if space is None else space.bounds
            bandwidth = 1.0 if bounds is None else 0.05 * (bounds[1] - bounds[0])
        self.bandwidth = positive("bandwidth", bandwidth)
        self.estimator = require(f"learned model '{self.name}'", "sklearn.neighbors").KernelDensity(
            bandwidth=self.bandwidth, kernel="gaussian")
        self._data: np.ndarray | None = None
        self._p: np.ndarray | None = None

    def fit(self, samples: np.ndarray, weights: np.ndarray | None, rng: np.random.Generator) -> None:
        """Keep ``samples`` ``(m, d)`` and their normalised ``weights`` ``(m,)`` (None: equal)."""
        self._data = np.array(samples, dtype=float)
        self._p = probabilities(weights, len(self._data))
        self.estimator.fit(self._data, sample_weight=self._p)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples ``(n, d)``: training points drawn by weight plus kernel noise."""
        if self._data is None:
            raise _not_fitted(self)
        picks = self._data[rng.choice(len(self._data), size=n, p=self._p)]
        return picks + self.bandwidth * rng.standard_normal(picks.shape)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density ``(m,)`` (nats) of points ``x`` ``(m, d)``."""
        return self.estimator.score_samples(np.atleast_2d(np.asarray(x, dtype=float)))
