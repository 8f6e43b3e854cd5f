"""Model families: how a generative model is stored, sampled and refit.

A model's state is a row of *moments*: the expected sufficient statistics of its
distribution, so that a training mixture is a weighted sum of rows and the maximum
likelihood fit is a function of that sum (``fit``):

- :class:`Categorical` over ``n`` outcomes with coordinates ``(n, d)``: the row is the
  probability vector ``(n,)``; the MLE of a mixture is the mixture.
- :class:`Gaussian` in ``d`` dimensions: the row is ``[E x (d), E x x^T (d*d)]``; the
  MLE of a mixture matches its first two moments. ``covariance`` is ``"full"``,
  ``"diag"`` (off-diagonals dropped) or ``"fixed"`` (mean-only: the covariance stays
  the model's initial one).

All methods are batched over rows: ``(V, k)`` arrays, never one call per model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from scipy.stats import norm, qmc

from ecosystem.core.curation import (
    BestOfK,
    Curator,
    Luce,
    Tilt,
    best_of_k_h,
    luce_h,
    population_h,
    tilt_h,
)
from ecosystem.core.rewards import Reward, Tabular


@dataclass(eq=False)
class Categorical:
    """Distributions over ``n`` outcomes placed at ``coords`` ``(n, d)``."""

    coords: np.ndarray
    kind = "categorical"
    _bases: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    """Luce bases by score values, reused across rounds (see :func:`~ecosystem.core.curation.population_h`)."""

    def __post_init__(self) -> None:
        c = np.asarray(self.coords, dtype=float)
        self.coords = c[:, None] if c.ndim == 1 else c

    @property
    def n(self) -> int:
        return self.coords.shape[0]

    @property
    def width(self) -> int:
        """Length of a moment row."""
        return self.n

    def reward_table(self, reward: Reward) -> np.ndarray:
        """The reward at every outcome, ``(n,)``."""
        if isinstance(reward, Tabular):
            return reward(self.coords)
        return np.asarray(reward(self.coords), dtype=float)

    def fit(self, moments: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
        """MLE from summed statistics ``(N, n)`` (counts or masses): normalise each row."""
        return moments / moments.sum(axis=1, keepdims=True)

    def normalise(self, stats: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Summed statistics (counts) divided by total weight ``(N,)``."""
        return stats / weight[:, None]

    def pack(self, rows: np.ndarray) -> np.ndarray:
        """Free parameters ``(N, n - 1)``: all probabilities but the last."""
        return rows[:, :-1]

    def unpack(self, theta: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """Moment rows from free parameters (the last probability is ``1 - sum``)."""
        return np.concatenate([theta, 1.0 - theta.sum(axis=1, keepdims=True)], axis=1)

    def curate(self, curator: Curator, rows: np.ndarray, tables: np.ndarray) -> np.ndarray:
        """Population form: curated rows ``p H / sum(p H)`` for producers ``rows`` ``(R, n)``."""
        q = rows * population_h(curator, rows, tables, self._bases)
        return q / q.sum(axis=1, keepdims=True)

    def sample(self, rows: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One outcome index per entry of ``which`` (row index into ``rows`` ``(V, n)``)."""
        used, which = np.unique(which, return_inverse=True)
        cdf = np.cumsum(rows[used], axis=1)
        cdf /= cdf[:, -1:]
        cdf[:, -1] = 1.0 + 1e-12
        flat = (cdf + np.arange(len(used))[:, None]).ravel()
        hit = np.searchsorted(flat, which + rng.random(which.size), side="right")
        return np.minimum(hit - which * self.n, self.n - 1)

    def empirical(self, samples: np.ndarray, owner: np.ndarray, n_owners: int,
                  weights: np.ndarray | None = None) -> np.ndarray:
        """Summed statistics (weighted counts) per owner, ``(n_owners, n)``."""
        counts = np.bincount(owner * self.n + samples, weights=weights, minlength=n_owners * self.n)
        return counts.reshape(n_owners, self.n)

    def scores(self, reward_table: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """Reward of outcome samples, given the table ``(n,)``."""
        return reward_table[samples]

    def points(self, samples: np.ndarray) -> np.ndarray:
        """Coordinates of samples, ``(m, d)``."""
        return self.coords[samples]


@dataclass(eq=False)
class Gaussian:
    """Gaussian distributions in ``dim`` dimensions; see the module docstring."""

    dim: int
    covariance: str = "full"
    unbiased: bool = False
    quadrature_points: int = 4096
    kind = "gaussian"

    def __post_init__(self) -> None:
        if self.covariance not in ("full", "diag", "fixed"):
            raise ValueError(f"covariance must be full, diag or fixed, not {self.covariance!r}")
        # Deterministic quasi-Monte-Carlo nodes for population-form curation (no RNG).
        u = qmc.Sobol(self.dim, scramble=False).random(self.quadrature_points)
        self._nodes = norm.ppf((u + 0.5 / self.quadrature_points) % 1.0)

    @property
    def width(self) -> int:
        return self.dim + self.dim * self.dim

    # -- moments <-> parameters
    def moments(self, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """Rows ``[mean, cov + mean mean^T]`` from ``mean`` ``(V, d)`` and ``cov`` ``(V, d, d)``."""
        mean = np.atleast_2d(mean)
        second = np.asarray(cov).reshape(-1, self.dim, self.dim) + mean[:, :, None] * mean[:, None, :]
        return np.concatenate([mean, second.reshape(len(mean), -1)], axis=1)

    def mean_cov(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``mean`` ``(V, d)`` and covariance ``(V, d, d)`` of moment rows ``(V, k)``."""
        d = self.dim
        mean = rows[:, :d]
        cov = rows[:, d:].reshape(-1, d, d) - mean[:, :, None] * mean[:, None, :]
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        # a collapsed model (variance below ~1e-16 mean^2) loses its variance to cancellation
        diag = np.einsum("vii->vi", cov)
        np.maximum(diag, 0.0, out=diag)
        return mean, cov

    def fit(self, moments: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
        """MLE from summed statistics ``[w, sum x, sum x x^T]`` normalised by their weight.

        ``moments`` rows are already divided by total weight; ``initial`` supplies the
        fixed covariance for ``covariance="fixed"``.
        """
        mean, cov = self.mean_cov(moments)
        if self.covariance == "diag":
            cov = cov * np.eye(self.dim)
        elif self.covariance == "fixed":
            cov = self.mean_cov(initial)[1]
        else:
            vals, vecs = np.linalg.eigh(cov)
            bad = vals[:, 0] < 0                  # cancellation left it indefinite: project to PSD
            if bad.any():
                cov[bad] = (vecs[bad] * np.clip(vals[bad], 0, None)[:, None, :]) @ np.swapaxes(vecs[bad], 1, 2)
        return self.moments(mean, cov)

    def pack(self, rows: np.ndarray) -> np.ndarray:
        """Free parameters: mean, then the covariance's upper triangle (full), diagonal
        (diag) or nothing (fixed); ``(N, m)``."""
        mean, cov = self.mean_cov(rows)
        if self.covariance == "fixed":
            return mean
        if self.covariance == "diag":
            return np.concatenate([mean, np.diagonal(cov, axis1=1, axis2=2)], axis=1)
        iu = np.triu_indices(self.dim)
        return np.concatenate([mean, cov[:, iu[0], iu[1]]], axis=1)

    def unpack(self, theta: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """Moment rows from free parameters; ``initial`` rows give a fixed covariance."""
        d = self.dim
        mean = theta[:, :d]
        if self.covariance == "fixed":
            return self.moments(mean, self.mean_cov(initial)[1])
        cov = np.zeros((len(theta), d, d))
        if self.covariance == "diag":
            cov[:, np.arange(d), np.arange(d)] = theta[:, d:]
        else:
            iu = np.triu_indices(d)
            cov[:, iu[0], iu[1]] = theta[:, d:]
            cov[:, iu[1], iu[0]] = theta[:, d:]
        return self.moments(mean, cov)

    def _roots(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, cov = self.mean_cov(rows)
        vals, vecs = np.linalg.eigh(cov)
        return mean, vecs * np.sqrt(np.clip(vals, 0.0, None))[:, None, :]

    def curate(self, curator: Curator, rows: np.ndarray, tables: None = None) -> np.ndarray:
        """Population form of curation for producer rows ``(R, k)``.

        Tilts of linear or quadratic rewards are closed-form Gaussians (precision
        ``S^-1 + Q/tau``, mean ``(I + S Q/tau)^-1 (mu + S g/tau)``); tilts of other rewards use
        adaptive importance sampling (:meth:`_tilt_adaptive`). Luce and best-of-K apply the
        exact categorical operator to ``quadrature_points`` fixed quasi-Monte-Carlo nodes
        ``mu + S^{1/2} z`` (their ``H <= K`` keeps the curated mass where the nodes are) and
        return the curated nodes' first two moments.
        """
        forms = [r.quadratic_form() for r in curator.rewards]
        if isinstance(curator.rule, Tilt) and all(f is not None for f in forms):
            out = np.zeros_like(rows)
            for nu, (g, q) in zip(curator.weights, forms, strict=True):
                out += nu * self._tilt_closed_form(rows, g / curator.rule.tau, q / curator.rule.tau)
            return out
        if isinstance(curator.rule, Tilt):
            return sum(nu * self._tilt_adaptive(rows, reward, curator.rule.tau)
                       for nu, reward in zip(curator.weights, curator.rewards, strict=True))
        mean, root = self._roots(rows)
        out = np.empty_like(rows)
        uniform = np.full((1, self.quadrature_points), 1.0 / self.quadrature_points)
        for i in range(rows.shape[0]):
            x = mean[i] + self._nodes @ root[i].T
            h = np.zeros(self.quadrature_points)
            for nu, reward in zip(curator.weights, curator.rewards, strict=True):
                r = reward(x)
                if isinstance(curator.rule, Luce):
                    h += nu * luce_h(uniform, r / curator.rule.tau, curator.rule.K)[0]
                elif isinstance(curator.rule, BestOfK):
                    h += nu * best_of_k_h(uniform, r, curator.rule.K)[0]
                else:
                    h += nu * tilt_h(uniform, r / curator.rule.tau)[0]
            out[i] = self._weighted_moments(x, h / h.sum())
        return out

    def _tilt_adaptive(self, rows: np.ndarray, reward: Reward, tau: float, rounds: int = 4) -> np.ndarray:
        """Tilt by a reward without a closed form: importance-weighted quasi-Monte-Carlo nodes
        drawn from a Gaussian proposal moved, ``rounds`` times, to the tilted moments found so
        far, so a tilt far into the tails stays accurate. A degenerate model (singular
        covariance) keeps the plain nodes."""
        out = np.empty_like(rows)
        for i, (mean, cov) in enumerate(zip(*self.mean_cov(rows), strict=True)):
            vals, vecs = np.linalg.eigh(cov)
            if vals[0] <= 1e-12 * max(vals[-1], 1e-300):
                vals = np.clip(vals, 0, None)
                x = mean + self._nodes @ (vecs * np.sqrt(vals)).T
                w = np.exp(reward(x) / tau - np.max(reward(x) / tau))
                out[i] = self._weighted_moments(x, w / w.sum())
                continue
            prec = (vecs / vals) @ vecs.T
            q_mean, q_vals, q_vecs = mean, vals, vecs
            for _ in range(rounds):
                z = self._nodes
                x = q_mean + z @ (q_vecs * np.sqrt(q_vals)).T
                d = x - mean
                log_w = (reward(x) / tau - 0.5 * np.einsum("mi,ij,mj->m", d, prec, d)
                         + 0.5 * np.sum(z * z, axis=1))
                w = np.exp(log_w - log_w.max())
                row = self._weighted_moments(x, w / w.sum())
                q_mean, q_cov = self.mean_cov(row[None])
                q_mean, (q_vals, q_vecs) = q_mean[0], np.linalg.eigh(q_cov[0])
                q_vals = np.clip(q_vals, 1e-12 * q_vals[-1], None)
            out[i] = row
        return out

    def _weighted_moments(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.concatenate([w @ x, np.einsum("m,mi,mj->ij", w, x, x).ravel()])

    def _tilt_closed_form(self, rows: np.ndarray, g: np.ndarray, q: np.ndarray) -> np.ndarray:
        mean, cov = self.mean_cov(rows)
        inv = np.linalg.inv(np.eye(self.dim) + cov @ q)
        cov_t = inv @ cov
        mean_t = np.einsum("vij,vj->vi", inv, mean) + np.einsum("vij,j->vi", cov_t, g)
        return self.moments(mean_t, 0.5 * (cov_t + np.swapaxes(cov_t, 1, 2)))

    def transform(self, rows: np.ndarray, matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Moments of ``A x + b`` for moment rows ``(R, k)``; ``A`` is ``(d, d)`` or one per row
        ``(R, d, d)``, ``b`` is ``(d,)`` or ``(R, d)``."""
        mean, cov = self.mean_cov(rows)
        matrix = np.broadcast_to(matrix, (len(rows), self.dim, self.dim))
        return self.moments(np.einsum("rij,rj->ri", matrix, mean) + offset,
                            matrix @ cov @ np.swapaxes(matrix, 1, 2))

    # -- finite samples
    def sample(self, rows: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One point ``(d,)`` per entry of ``which``; returns ``(m, d)``. Square roots are
        taken only of the rows drawn from."""
        z = rng.standard_normal((which.size, self.dim))
        if which.size == 0:
            return z
        runs = np.r_[0, np.flatnonzero(which[1:] != which[:-1]) + 1, which.size]
        in_place = len(runs) - 1 <= 4 * len(rows)   # slots come in runs of one row: transform in place
        if not in_place:
            order = np.argsort(which, kind="stable")
            which, z = which[order], z[order]
            runs = np.r_[0, np.flatnonzero(np.diff(which)) + 1, which.size]
        used, slot = np.unique(which[runs[:-1]], return_inverse=True)
        mean, root = self._roots(rows[used])
        for (a, b), r in zip(pairwise(runs), slot, strict=True):   # one matrix product per run
            z[a:b] = z[a:b] @ root[r].T + mean[r]
        if in_place:
            return z
        out = np.empty_like(z)
        out[order] = z
        return out

    def empirical(self, samples: np.ndarray, owner: np.ndarray, n_owners: int,
                  weights: np.ndarray | None = None) -> np.ndarray:
        """Summed statistics ``[sum w x, sum w x x^T]`` per owner, ``(n_owners, k)``."""
        w = np.ones(len(samples)) if weights is None else np.asarray(weights, dtype=float)
        if np.any(owner[1:] < owner[:-1]):
            order = np.argsort(owner, kind="stable")
            samples, owner, w = samples[order], owner[order], w[order]
        out = np.zeros((n_owners, self.width))
        bounds = np.searchsorted(owner, np.arange(n_owners + 1))
        d = self.dim
        for o in np.flatnonzero(np.diff(bounds)):   # one matrix product per owner
            x, wo = samples[bounds[o]:bounds[o + 1]], w[bounds[o]:bounds[o + 1]]
            out[o, :d] = wo @ x
            out[o, d:] = (x.T @ (wo[:, None] * x)).ravel()
        return out

    def normalise(self, stats: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Summed statistics divided by total weight, with the unbiased correction if asked."""
        rows = stats / weight[:, None]
        if self.unbiased:
            mean, cov = self.mean_cov(rows)
            factor = (weight / np.maximum(weight - 1.0, 1e-12))[:, None, None]
            rows = self.moments(mean, cov * factor)
        return rows

    def scores(self, reward: Reward, samples: np.ndarray) -> np.ndarray:
        return reward(samples)

    def points(self, samples: np.ndarray) -> np.ndarray:
        return samples


Family = Categorical | Gaussian
