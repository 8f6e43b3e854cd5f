"""Model families: how a generative model is stored, sampled, refit, curated and measured.

A model's state is a row of *moments*: the expected sufficient statistics of its
distribution, so that a training mixture is a weighted sum of rows and the maximum
likelihood fit is a function of that sum (``fit``):

- :class:`Categorical` over ``n`` outcomes with coordinates ``(n, d)``: the row is the
  probability vector ``(n,)``; the MLE of a mixture is the mixture.
- :class:`Gaussian` in ``d`` dimensions: the row is ``[E x (d), E x x^T (d*d)]``; the
  MLE of a mixture matches its first two moments. ``covariance`` is ``"full"``,
  ``"diag"`` (off-diagonals dropped) or ``"fixed"`` (mean-only: the covariance stays
  the model's initial one).

:class:`Family` is the protocol both implement; the engine, the metrics and the analysis
use nothing else. All methods are batched over rows: ``(V, k)`` arrays, never one call per
model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.special import xlogy

from ecosystem.core import rowwise
from ecosystem.core.curation import Curator
from ecosystem.core.rewards import Reward, Tabular
from ecosystem.core.streams import Split


@dataclass(eq=False)
class Judges:
    """A curator's users as a family works with them, made once per compiled graph
    (:meth:`Family.judges`): ``handles[u]`` is user type ``u``'s reward in the family's own
    form; ``cache`` keeps what the choice rule reuses round after round."""

    curator: Curator
    handles: list
    cache: dict = field(default_factory=dict)


@runtime_checkable
class Family(Protocol):
    """What a model family provides. ``k = width`` is the length of a moment row; ``V``
    rows of any nodes, ``N`` rows of models, ``m`` samples.

    Population mode (exact): ``fit``, ``judges``, ``curate``; for the analysis, free
    parameters (``pack``/``unpack``), their domain and gradients. A continuous family also
    offers ``transform(rows, matrix, offset)`` (rows of ``A x + b``), used by edge transforms.
    Sample mode: ``sample``, ``empirical``, ``normalise``, ``judges``, ``scores``,
    ``tilts_exactly``, ``fit``. Metrics: ``expected_reward``, ``expected_rewards``,
    ``diversity``, ``drift``, ``pairwise_divergence``; ``points`` for pictures.
    """

    kind: str
    """The family's name in scenario files and summaries."""

    @property
    def width(self) -> int:
        """``k``, the length of a moment row."""

    def fit(self, moments: np.ndarray, initial: np.ndarray | None = None,
            previous: np.ndarray | None = None) -> np.ndarray:
        """Maximum-likelihood rows ``(N, k)`` from training moments ``(N, k)`` (a mixture of rows
        or normalised sample statistics); ``initial`` ``(N, k)`` for what the fit keeps fixed;
        ``previous`` ``(N, k)``: the models' rows before this fit (a family may keep parts of them
        the training moments say nothing about)."""

    def judges(self, curator: Curator) -> Judges:
        """``curator``'s users in this family's form (reused for every round of a compiled graph)."""

    def curate(self, judges: Judges, rows: np.ndarray) -> np.ndarray:
        """Population form of curation: curated rows ``(R, k)`` of producers ``rows`` ``(R, k)``."""

    def pack(self, rows: np.ndarray) -> np.ndarray:
        """Free parameters ``(N, m)`` of rows ``(N, k)``."""

    def unpack(self, theta: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """Rows ``(N, k)`` from free parameters ``(N, m)``."""

    def admissible(self, rows: np.ndarray) -> bool:
        """Whether ``rows`` ``(N, k)`` are distributions of the family (the analysis' domain)."""

    def difference_step(self, row: np.ndarray, j: int, value: float, step: float) -> float:
        """A finite-difference step for free parameter ``j`` (now ``value``) of the model at
        ``row`` ``(k,)`` that keeps it admissible; about ``step``."""

    def reward_gradient(self, row: np.ndarray, reward: Reward) -> np.ndarray | None:
        """``d E_p[r] / d theta`` ``(m,)`` at ``row`` in closed form, or None (then differences)."""

    def sample(self, rows: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One sample per entry of ``which`` (indices into ``rows`` ``(V, k)``): ``(m, ...)``."""

    def empirical(self, samples: np.ndarray, owner: np.ndarray, n_owners: int,
                  weights: np.ndarray | None = None) -> np.ndarray:
        """Summed sufficient statistics per owner, ``(n_owners, k)``."""

    def normalise(self, stats: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Summed statistics ``(N, k)`` divided by their total weight ``(N,)``: moment rows to fit."""

    def scores(self, judges: Judges, user: int, samples: np.ndarray) -> np.ndarray:
        """Reward ``(m,)`` of ``samples`` for user type ``user``."""

    def tilts_exactly(self, curator: Curator) -> bool:
        """Whether ``curate`` of a tilt gives the tilted distribution itself (then sample mode
        draws from it instead of picking among candidates)."""

    def expected_reward(self, rows: np.ndarray, reward: Reward) -> np.ndarray:
        """``E_p[r]`` ``(V,)`` for every row."""

    def expected_rewards(self, rows: np.ndarray, rewards: list[Reward]) -> np.ndarray:
        """``E_{p_i}[r_k]`` ``(V, R)`` for every row and reward."""

    def diversity(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Diversity columns ``(V,)``; ``diversity`` is always one of them."""

    def drift(self, rows: np.ndarray, reference: np.ndarray, diversity: dict | None = None) -> np.ndarray:
        """Distance ``(V,)`` of each row from the reference row ``(k,)`` or rows ``(V, k)``;
        ``diversity``: this family's :meth:`diversity` of ``rows``, if at hand."""

    def pairwise_divergence(self, rows: np.ndarray) -> float:
        """Mean pairwise divergence between the rows (homogenisation: lower is more alike)."""

    def points(self, samples: np.ndarray) -> np.ndarray:
        """Coordinates ``(m, d)`` of samples."""


def _sum_plogp(rows: np.ndarray) -> np.ndarray:
    """``sum_x p log p`` per row ``(N,)`` (``0 log 0 = 0``), without scipy's slower ``xlogy``;
    large ``rows`` on two cores (:func:`~ecosystem.core.rowwise.rowwise`)."""
    return rowwise.rowwise(_plogp_rows, rows, min_size=rowwise.ENTROPY_MIN_SIZE)


def _plogp_rows(rows: np.ndarray) -> np.ndarray:
    """:func:`_sum_plogp` in one call."""
    logs = np.maximum(rows, np.finfo(float).tiny)   # p log p -> 0 as p -> 0
    np.log(logs, out=logs)
    return np.einsum("ij,ij->i", rows, logs)


def _by_length(items: np.ndarray, lengths: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """``items`` grouped by ``lengths[items]``: ``[(items of one length, that length), ...]``."""
    if len(items) == 1:
        return [(items, int(lengths[items[0]]))]
    sizes = lengths[items]
    order = np.argsort(sizes, kind="stable")
    cuts = np.flatnonzero(np.diff(sizes[order])) + 1
    return [(group, int(lengths[group[0]])) for group in np.split(items[order], cuts)] if cuts.size < len(items) - 1 \
        else [(items[i:i + 1], int(sizes[i])) for i in range(len(items))]


def affine_runs(z: np.ndarray, starts: np.ndarray, lengths: np.ndarray, matrices: np.ndarray,
                offsets: np.ndarray, which: np.ndarray) -> None:
    """``z[a:a + L] = z[a:a + L] @ matrices[j].T + offsets[j]`` in place for each run ``(a, L, j)`` of
    ``(starts, lengths, which)`` (``matrices`` ``(J, d, d)`` C-contiguous, ``offsets`` ``(J, d)``).

    Runs of the same length are one stacked product, which makes for each run the same BLAS call
    (same shapes and strides) as the run alone: the numbers are those of one product per run.
    """
    for runs, size in _by_length(np.arange(len(starts)), lengths):
        if len(runs) < 3:                # a stacked product pays off from three runs on
            for a, j in zip(starts[runs].tolist(), which[runs].tolist(), strict=True):
                z[a:a + size] = z[a:a + size] @ matrices[j].T + offsets[j]
            continue
        take = starts[runs][:, None] + np.arange(size)
        j = which[runs]
        moved = np.matmul(z[take], matrices[j].transpose(0, 2, 1))
        moved += offsets[j][:, None, :]
        z[take] = moved


def _run_order(which: np.ndarray, runs: np.ndarray, n_rows: int, rng: np.random.Generator | Split) -> np.ndarray | None:
    """How draws from rows ``which`` ``(m,)`` (run bounds ``runs``) are transformed: in place (None)
    when the slots come in runs of one row, at most 4 runs per row read; else in the stable order of
    their rows (one run per row). A batch's draw (:class:`~ecosystem.core.streams.Split`) decides so
    per block, with the rows its block's own draw reads: each block's runs are those of its run."""
    if not isinstance(rng, Split):
        return None if len(runs) - 1 <= 4 * n_rows else np.argsort(which, kind="stable")
    block = rng.blocks
    sort = np.bincount(block[runs[:-1]], minlength=len(rng.rows)) > 4 * rng.rows
    if not sort.any():
        return None
    if sort.all():   # the rows of different blocks differ: sorting all sorts each block
        return np.argsort(which, kind="stable")
    return np.lexsort((np.where(sort[block], which, np.arange(which.size)), block))


_QMC_NODES: dict[tuple[int, int], np.ndarray] = {}
"""Gaussian quadrature nodes by ``(dim, quadrature_points)`` (:attr:`Gaussian._nodes`)."""


_UNSCALED = (1e-140, 1e140)
"""Largest entries for which LAPACK's ``dsyevd`` does not rescale a matrix (its bounds are about
1e-146 and 1e146): a diagonal matrix outside them goes to LAPACK itself."""


def _diagonal_spectrum(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``np.linalg.eigh``'s eigenvalues ``(V, d)`` and the order of the axes they belong to
    ``(V, d)`` when every matrix of ``cov`` ``(V, d, d)`` is exactly diagonal; None otherwise
    (:func:`_sorted_diagonal`)."""
    diag = np.einsum("vii->vi", cov)
    if len(cov) == 0 or np.count_nonzero(cov) > np.count_nonzero(diag):
        return None
    return _sorted_diagonal(diag)


def _sorted_diagonal(diag: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The eigenvalues and their axes' order ``(V, d)`` of the diagonal matrices with diagonals
    ``diag`` ``(V, d)``, as LAPACK gives them; None if it would rescale them or they are not finite.

    LAPACK's reduction to tridiagonal form leaves a diagonal matrix as it is (every Householder
    reflector is the identity), so its eigenvalues are the diagonal itself, its eigenvectors the
    identity's columns, ordered by the selection sort that ends ``dsteqr``/``dstedc``: position
    ``i`` takes the first smallest entry of ``i..d-1`` and swaps it with entry ``i`` (so ties are
    not in their stable order). The same bits without the call (tests/test_diagonal_eigh.py
    checks them against it)."""
    v, d = diag.shape
    if not np.isfinite(diag).all():
        return None
    top = np.abs(diag).max(axis=1)
    if ((top > 0) & (top < _UNSCALED[0]) | (top > _UNSCALED[1])).any():
        return None
    vals, axes = diag.copy(), np.empty((v, d), dtype=np.int64)
    axes[:] = np.arange(d)
    flat_vals, flat_axes, start = vals.reshape(-1), axes.reshape(-1), np.arange(0, v * d, d)
    for i in range(d - 1):               # swap entry i with the first smallest of i..d-1, all rows at once
        k = vals[:, i:].argmin(axis=1)
        k += start + i                   # its flat index
        smallest = flat_vals[k]
        flat_vals[k] = vals[:, i]
        vals[:, i] = smallest
        axis = flat_axes[k]
        flat_axes[k] = axes[:, i]
        axes[:, i] = axis
    return vals, axes


def _eigh(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.linalg.eigh(cov)`` for symmetric ``cov`` ``(V, d, d)``, bit for bit, without LAPACK
    when every matrix is exactly diagonal (:func:`_diagonal_spectrum`)."""
    spectrum = _diagonal_spectrum(cov)
    if spectrum is None:
        return np.linalg.eigh(cov)
    vals, axes = spectrum
    vecs = np.zeros(cov.shape)
    vecs[np.arange(len(cov))[:, None], axes, np.arange(cov.shape[-1])] = 1.0
    return vals, vecs


def _sqrtm(cov: np.ndarray) -> np.ndarray:
    vals, vecs = _eigh(cov)
    return (vecs * np.sqrt(np.clip(vals, 0, None))[..., None, :]) @ np.swapaxes(vecs, -1, -2)


@dataclass(eq=False)
class Categorical:
    """Distributions over ``n`` outcomes placed at ``coords`` ``(n, d)``."""

    coords: np.ndarray
    kind = "categorical"

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

    def fit(self, moments: np.ndarray, initial: np.ndarray | None = None,
            previous: np.ndarray | None = None) -> np.ndarray:
        """MLE from summed statistics ``(N, n)`` (counts or masses): normalise each row
        (``initial`` and ``previous`` unused)."""
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

    def admissible(self, rows: np.ndarray) -> bool:
        return bool(np.all(rows >= 0))

    def difference_step(self, row: np.ndarray, j: int, value: float, step: float) -> float:
        """At most half the room to 0 of the probability and of the implied last one."""
        room = min(row[j], row[-1])
        return min(step, 0.5 * room) if room > 0 else step

    def reward_gradient(self, row: np.ndarray, reward: Reward) -> np.ndarray:
        table = self.reward_table(reward)
        return table[:-1] - table[-1]

    def judges(self, curator: Curator) -> Judges:
        """Handles: each user type's reward table ``(n,)``."""
        return Judges(curator, [self.reward_table(r) for r in curator.rewards])

    def curate(self, judges: Judges, rows: np.ndarray) -> np.ndarray:
        """Population form: curated rows ``p H / sum(p H)`` for producers ``rows`` ``(R, n)``
        (the rule's reusable part, e.g. the Luce basis, is made on first use and kept)."""
        cache = judges.cache
        if "tables" not in cache:
            cache["tables"] = np.stack(judges.handles)
            cache["prepared"] = [judges.curator.rule.prepare(r) for r in cache["tables"]]
        return judges.curator.curate(rows, cache["tables"], cache["prepared"])

    def tilts_exactly(self, curator: Curator) -> bool:
        return curator.rule.tilts

    def sample(self, rows: np.ndarray, which: np.ndarray, rng: np.random.Generator | Split) -> np.ndarray:
        """One outcome index per entry of ``which`` (row index into ``rows`` ``(V, n)``); a batch's
        draw (:class:`~ecosystem.core.streams.Split`) is resolved per block, as its run does."""
        u = rng.random(which.size)
        if not isinstance(rng, Split):
            return self._outcomes(rows, which, u)
        out = np.empty(which.size, dtype=np.int64)
        for _, part, _ in rng.parts:
            out[part] = self._outcomes(rows, which[part], u[part])
        return out

    def _outcomes(self, rows: np.ndarray, which: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Outcomes of uniforms ``u`` ``(m,)`` under rows ``which``: one search of all used rows'
        CDFs, each shifted by its rank among them."""
        used, which = np.unique(which, return_inverse=True)
        cdf = np.cumsum(rows[used], axis=1)
        cdf /= cdf[:, -1:]
        cdf[:, -1] = 1.0 + 1e-12
        flat = (cdf + np.arange(len(used))[:, None]).ravel()
        hit = np.searchsorted(flat, which + u, side="right")
        return np.minimum(hit - which * self.n, self.n - 1)

    def empirical(self, samples: np.ndarray, owner: np.ndarray, n_owners: int,
                  weights: np.ndarray | None = None) -> np.ndarray:
        """Summed statistics (weighted counts) per owner, ``(n_owners, n)``."""
        counts = np.bincount(owner * self.n + samples, weights=weights, minlength=n_owners * self.n)
        return counts.reshape(n_owners, self.n)

    def scores(self, judges: Judges, user: int, samples: np.ndarray) -> np.ndarray:
        """Reward of outcome samples: a lookup in the user's table."""
        return judges.handles[user][samples]

    def points(self, samples: np.ndarray) -> np.ndarray:
        """Coordinates of samples, ``(m, d)``."""
        return self.coords[samples]

    # -- metrics
    def expected_reward(self, rows: np.ndarray, reward: Reward) -> np.ndarray:
        return rows @ self.reward_table(reward)

    def expected_rewards(self, rows: np.ndarray, rewards: list[Reward]) -> np.ndarray:
        return rows @ np.stack([self.reward_table(r) for r in rewards], axis=1)

    def diversity(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """``diversity``: the entropy in nats."""
        return {"diversity": -_sum_plogp(rows)}

    def drift(self, rows: np.ndarray, reference: np.ndarray, diversity: dict | None = None) -> np.ndarray:
        """``KL(p || p_ref)`` in nats."""
        reference = np.atleast_2d(reference)
        if len(reference) == 1 and np.all(reference > 0):
            neg_entropy = _sum_plogp(rows) if diversity is None else -diversity["diversity"]
            return neg_entropy - rows @ np.log(reference[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(xlogy(rows, rows) - xlogy(rows, reference), axis=1)

    def pairwise_divergence(self, rows: np.ndarray) -> float:
        """Mean squared Hellinger distance, in O(N) through
        ``sum_{i != j} |a_i - a_j|^2 = 2 N sum_i |a_i|^2 - 2 |sum_i a_i|^2`` with ``a = sqrt(p)``."""
        n = len(rows)
        if n < 2:
            return 0.0
        rows = rows if rows.min() >= 0 else np.clip(rows, 0, None)
        total = 2 * n * rows.sum() - 2 * np.sum(np.sqrt(rows).sum(axis=0) ** 2)   # sum sqrt(p)^2 = sum p
        return float(0.5 * total / (n * (n - 1)))


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

    @property
    def _nodes(self) -> np.ndarray:
        """Deterministic quasi-Monte-Carlo nodes ``(quadrature_points, dim)`` for population-form
        curation and non-quadratic rewards (no RNG): made on first use and shared (read-only) by
        every family of the same size, so building a scenario does not pay for them."""
        key = (self.dim, self.quadrature_points)
        nodes = _QMC_NODES.get(key)
        if nodes is None:
            from scipy.stats import norm, qmc  # here: scipy.stats takes most of a second to import

            u = qmc.Sobol(self.dim, scramble=False).random(self.quadrature_points)
            nodes = _QMC_NODES[key] = norm.ppf((u + 0.5 / self.quadrature_points) % 1.0)
            nodes.flags.writeable = False
        return nodes

    @property
    def width(self) -> int:
        return self.dim + self.dim * self.dim

    # -- moments <-> parameters
    def moments(self, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """Rows ``[mean, cov + mean mean^T]`` from ``mean`` ``(V, d)`` and ``cov`` ``(V, d, d)``."""
        mean, d = np.atleast_2d(mean), self.dim
        out = np.empty((len(mean), d + d * d))
        out[:, :d] = mean
        second = out[:, d:].reshape(-1, d, d)
        np.multiply(mean[:, :, None], mean[:, None, :], out=second)
        second += np.asarray(cov).reshape(-1, d, d)      # cov + mean mean^T
        return out

    def mean_cov(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``mean`` ``(V, d)`` and covariance ``(V, d, d)`` of moment rows ``(V, k)``."""
        d = self.dim
        mean = rows[:, :d]
        outer = mean[:, :, None] * mean[:, None, :]
        raw = np.subtract(rows[:, d:].reshape(-1, d, d), outer, out=outer)   # E x x^T - mu mu^T
        cov = raw + np.swapaxes(raw, 1, 2)                                 # symmetrised
        cov *= 0.5
        # a collapsed model (variance below ~1e-16 mean^2) loses its variance to cancellation
        diag = np.einsum("vii->vi", cov)
        np.maximum(diag, 0.0, out=diag)
        return mean, cov

    def fit(self, moments: np.ndarray, initial: np.ndarray | None = None,
            previous: np.ndarray | None = None) -> np.ndarray:
        """MLE from summed statistics ``[w, sum x, sum x x^T]`` normalised by their weight.

        ``moments`` rows are already divided by total weight; ``initial`` supplies the
        fixed covariance for ``covariance="fixed"``; ``previous`` is unused.
        """
        if self.covariance == "fixed":   # only the mean is fit
            return self.moments(moments[:, :self.dim], self._fixed_cov(initial))
        mean, cov = self.mean_cov(moments)
        if self.covariance == "diag":
            cov = cov * np.eye(self.dim)
        else:
            vals, vecs = _eigh(cov)
            bad = vals[:, 0] < 0                  # cancellation left it indefinite: project to PSD
            if bad.any():
                cov[bad] = (vecs[bad] * np.clip(vals[bad], 0, None)[:, None, :]) @ np.swapaxes(vecs[bad], 1, 2)
        return self.moments(mean, cov)

    def _fixed_cov(self, initial: np.ndarray) -> np.ndarray:
        """The covariances ``(N, d, d)`` of ``initial`` rows, kept for the next fit on the same rows
        (a run refits from the same initial rows every round)."""
        kept = getattr(self, "_initial_cov", None)
        if kept is not None and kept[0].shape == initial.shape and np.array_equal(kept[0], initial):
            return kept[1]
        cov = self.mean_cov(initial)[1]
        self._initial_cov = (np.array(initial, copy=True), cov)
        return cov

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

    def admissible(self, rows: np.ndarray) -> bool:
        return True

    def difference_step(self, row: np.ndarray, j: int, value: float, step: float) -> float:
        """Relative to the parameter's size."""
        return step * max(1.0, abs(value))

    def reward_gradient(self, row: np.ndarray, reward: Reward) -> np.ndarray | None:
        """``g - Q mu`` for a mean-only model and a quadratic reward; None otherwise."""
        form = reward.quadratic_form()
        if self.covariance != "fixed" or form is None:
            return None
        g, q = form
        return g - q @ self.mean_cov(row[None])[0][0]

    def _roots(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, cov = self.mean_cov(rows)
        vals, vecs = _eigh(cov)
        return mean, vecs * np.sqrt(np.clip(vals, 0.0, None))[:, None, :]

    def _draw_roots(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, tuple | None]:
        """What a draw from ``rows`` ``(V, k)`` needs: ``(mean, root, None)`` with the square roots
        ``(V, d, d)`` of :meth:`_roots`, or, when every covariance is exactly diagonal,
        ``(mean, None, (picks, scale))``: the root is then the identity's columns in the order of
        :func:`_diagonal_spectrum`, scaled, so ``z @ root.T`` has in axis ``i`` the single product
        ``z[picks[i]] * scale[i]`` (``picks``, ``scale`` ``(V, d)``): the same bits, without it."""
        diag = self._diagonal_variances(rows)
        spectrum = None if diag is None else _sorted_diagonal(diag)
        if spectrum is None:
            return *self._roots(rows), None
        return rows[:, :self.dim], None, (np.argsort(spectrum[1], axis=1), np.sqrt(np.clip(diag, 0.0, None)))

    def _diagonal_variances(self, rows: np.ndarray) -> np.ndarray | None:
        """The diagonals ``(V, d)`` of :meth:`mean_cov`'s covariances when ``E x_i x_j = mu_i mu_j``
        exactly off the diagonal in every row (so those covariances are exactly diagonal), with
        its bits (``E x_i^2 - mu_i^2``, floored at 0); else None. Fewer passes than ``mean_cov``."""
        d = self.dim
        mean, second = rows[:, :d], rows[:, d:].reshape(-1, d, d)
        if d > 1 and (second[:, 1, 0] != mean[:, 1] * mean[:, 0]).any():   # a full covariance, mostly
            return None
        outer = mean[:, :, None] * mean[:, None, :]
        differs = second != outer
        np.einsum("vii->vi", differs)[:] = False
        if differs.any():
            return None
        diag = np.einsum("vii->vi", second) - np.einsum("vii->vi", outer)
        return np.maximum(diag, 0.0, out=diag)

    def judges(self, curator: Curator) -> Judges:
        """Handles: the rewards themselves (evaluated at points)."""
        return Judges(curator, list(curator.rewards))

    def tilts_exactly(self, curator: Curator) -> bool:
        """Tilts of linear or quadratic rewards are Gaussians in closed form."""
        return curator.rule.tilts and all(r.quadratic_form() is not None for r in curator.rewards)

    def curate(self, judges: Judges, rows: np.ndarray) -> np.ndarray:
        """Population form of curation for producer rows ``(R, k)``.

        Tilts of linear or quadratic rewards are closed-form Gaussians (precision
        ``S^-1 + Q/tau``, mean ``(I + S Q/tau)^-1 (mu + S g/tau)``); tilts of other rewards use
        adaptive importance sampling (:meth:`_tilt_adaptive`). Luce and best-of-K apply the
        exact categorical operator to ``quadrature_points`` fixed quasi-Monte-Carlo nodes
        ``mu + S^{1/2} z`` (their ``H <= K`` keeps the curated mass where the nodes are) and
        return the curated nodes' first two moments.
        """
        curator = judges.curator
        rule = curator.rule
        if self.tilts_exactly(curator):
            out = np.zeros_like(rows)
            for nu, (g, q) in zip(curator.weights, [r.quadratic_form() for r in curator.rewards], strict=True):
                out += nu * self._tilt_closed_form(rows, g / rule.tau, q / rule.tau)
            return out
        if rule.tilts:
            return sum(nu * self._tilt_adaptive(rows, reward, rule.tau)
                       for nu, reward in zip(curator.weights, curator.rewards, strict=True))
        mean, root = self._roots(rows)
        out = np.empty_like(rows)
        uniform = np.full((1, self.quadrature_points), 1.0 / self.quadrature_points)
        for i in range(rows.shape[0]):
            x = mean[i] + self._nodes @ root[i].T
            h = np.zeros(self.quadrature_points)
            for nu, reward in zip(curator.weights, curator.rewards, strict=True):
                h += nu * rule.h(uniform, reward(x))[0]
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
        if not q.any() and np.isfinite(cov).all():   # a linear reward: the inverse is I, and I S is S
            cov_t = cov + 0.0                           # (bit for bit: a zero of the product is +0)
            mean_t = (mean + 0.0) + np.einsum("vij,j->vi", cov_t, g)
        else:
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
        return self._sample(rows, lambda used: self._draw_roots(rows[used]), which, rng)

    def sampler(self, rows: np.ndarray):
        """``sample(rows, ., .)`` as a function ``(which, rng) -> samples`` that takes each row's
        square root once, however many calls draw from it (the same numbers as :meth:`sample`:
        every root is that row's own). For rows that stay unchanged while it is used."""
        v, d = len(rows), self.dim
        kind = np.zeros(v, dtype=np.int8)                 # 0 not yet taken, 1 a root, 2 diagonal
        means, picks, scales = np.empty((v, d)), np.empty((v, d), dtype=np.int64), np.empty((v, d))
        roots = None

        def roots_of(used: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, tuple | None]:
            nonlocal roots
            new = used[kind[used] == 0]
            if new.size:
                means[new], root, diagonal = self._draw_roots(rows[new])
                if diagonal is None:
                    if roots is None:
                        roots = np.empty((v, d, d))
                    roots[new], kind[new] = root, 1
                else:
                    (picks[new], scales[new]), kind[new] = diagonal, 2
            if (kind[used] == 2).all():
                return means[used], None, (picks[used], scales[used])
            if (kind[used] == 1).all():
                return means[used], roots[used], None
            return self._draw_roots(rows[used])          # some of each: this draw's rows alone

        return lambda which, rng: self._sample(rows, roots_of, which, rng)

    def _sample(self, rows: np.ndarray, roots_of, which: np.ndarray, rng: np.random.Generator | Split) -> np.ndarray:
        z = rng.standard_normal((which.size, self.dim))
        if which.size == 0:
            return z
        runs = np.r_[0, np.flatnonzero(which[1:] != which[:-1]) + 1, which.size]
        used, slot = np.unique(which[runs[:-1]], return_inverse=True)
        mean, root, diagonal = roots_of(used)
        if diagonal is not None:                                     # one product per entry
            picks, scale = diagonal
            each = np.repeat(slot, np.diff(runs))
            flat = picks.take(each, axis=0)
            flat += np.arange(0, z.size, self.dim)[:, None]
            x = z.reshape(-1).take(flat)
            x *= scale.take(each, axis=0)
            x += (mean + 0.0).take(each, axis=0)   # a product's sum starts from +0: (-0) + (-0) is +0 there
            return x
        order = _run_order(which, runs, len(rows), rng)
        in_place = order is None
        if not in_place:
            which, z = which[order], z[order]
            runs = np.r_[0, np.flatnonzero(np.diff(which)) + 1, which.size]
            slot = np.searchsorted(used, which[runs[:-1]])
        affine_runs(z, runs[:-1], np.diff(runs), root, mean, slot)   # one matrix product per run
        if in_place:
            return z
        out = np.empty_like(z)
        out[order] = z
        return out

    def empirical(self, samples: np.ndarray, owner: np.ndarray, n_owners: int,
                  weights: np.ndarray | None = None) -> np.ndarray:
        """Summed statistics ``[sum w x, sum w x x^T]`` per owner, ``(n_owners, k)``; with a fixed
        covariance only ``sum w x`` (the rest zero): its fit reads nothing else."""
        w = np.ones(len(samples)) if weights is None else np.asarray(weights, dtype=float)
        second = self.covariance != "fixed"
        if np.any(owner[1:] < owner[:-1]):
            order = np.argsort(owner, kind="stable")
            samples, owner, w = samples[order], owner[order], w[order]
        out = np.zeros((n_owners, self.width))
        bounds = np.searchsorted(owner, np.arange(n_owners + 1))
        d, counts = self.dim, np.diff(bounds)
        for owners, size in _by_length(np.flatnonzero(counts), counts):   # two matrix products per owner,
            if len(owners) == 1:                                           # stacked by training-set size
                a = bounds[owners[0]]
                x, wo = samples[a:a + size], w[a:a + size]
                out[owners[0], :d] = wo @ x
                if second:
                    out[owners[0], d:] = (x.T @ (wo[:, None] * x)).ravel()
                continue
            starts = bounds[owners]
            if np.array_equal(starts, starts[0] + size * np.arange(len(owners))):   # side by side: a view
                x = samples[starts[0]:starts[0] + size * len(owners)].reshape(len(owners), size, d)
                wo = w[starts[0]:starts[0] + size * len(owners)].reshape(len(owners), size)
            else:
                take = starts[:, None] + np.arange(size)
                x, wo = samples[take], w[take]
            out[owners, :d] = np.matmul(wo[:, None, :], x)[:, 0]
            if second:
                out[owners, d:] = np.matmul(x.transpose(0, 2, 1), wo[:, :, None] * x).reshape(len(owners), -1)
        return out

    def normalise(self, stats: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Summed statistics divided by total weight, with the unbiased correction if asked."""
        rows = stats / weight[:, None]
        if self.unbiased:
            mean, cov = self.mean_cov(rows)
            factor = (weight / np.maximum(weight - 1.0, 1e-12))[:, None, None]
            rows = self.moments(mean, cov * factor)
        return rows

    def scores(self, judges: Judges, user: int, samples: np.ndarray) -> np.ndarray:
        return judges.handles[user](samples)

    def points(self, samples: np.ndarray) -> np.ndarray:
        return samples

    # -- metrics
    def expected_reward(self, rows: np.ndarray, reward: Reward) -> np.ndarray:
        """``E r(x) = r(mu) - tr(Q S) / 2`` for a quadratic reward with Hessian ``-Q``; otherwise the
        mean over the fixed quasi-Monte-Carlo nodes."""
        return self._expected_reward(rows, reward, self.mean_cov(rows))

    def _expected_reward(self, rows: np.ndarray, reward: Reward, moments: tuple) -> np.ndarray:
        mean, cov = moments
        form = reward.quadratic_form()
        if form is not None:
            return reward(mean) - 0.5 * np.einsum("ij,vji->v", form[1], cov)
        mean, root = self._roots(rows)
        return np.array([reward(m + self._nodes @ r.T).mean() for m, r in zip(mean, root, strict=True)])

    def expected_rewards(self, rows: np.ndarray, rewards: list[Reward]) -> np.ndarray:
        moments = self.mean_cov(rows)   # once for all rewards
        return np.stack([self._expected_reward(rows, r, moments) for r in rewards], axis=1)

    def diversity(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """``diversity``: the total variance ``tr S``; ``log_det``: ``log det S`` (-inf if singular)."""
        _, cov = self.mean_cov(rows)
        sign, logdet = np.linalg.slogdet(cov)
        return {
            "diversity": np.trace(cov, axis1=1, axis2=2),
            "log_det": np.where(sign > 0, logdet, -np.inf),
        }

    def drift(self, rows: np.ndarray, reference: np.ndarray, diversity: dict | None = None) -> np.ndarray:
        """The 2-Wasserstein distance from the reference Gaussian(s)."""
        reference = np.atleast_2d(reference)
        mean, cov = self.mean_cov(rows)
        ref_mean, ref_cov = self.mean_cov(reference)
        root = _sqrtm(ref_cov)
        cross = _sqrtm(root @ cov @ root)
        w2 = np.sum((mean - ref_mean) ** 2, axis=1) + np.trace(
            cov + ref_cov - 2 * cross, axis1=1, axis2=2
        )
        return np.sqrt(np.clip(w2, 0.0, None))

    def pairwise_divergence(self, rows: np.ndarray) -> float:
        """Mean of ``|mu_i - mu_j|^2 + |S_i^1/2 - S_j^1/2|_F^2`` over pairs (W2^2 when the
        covariances commute), in O(N) as for categorical models."""
        n = len(rows)
        if n < 2:
            return 0.0
        mean, cov = self.mean_cov(rows)
        a = np.concatenate([mean, _sqrtm(cov).reshape(n, -1)], axis=1)
        total = 2 * n * np.sum(a * a) - 2 * np.sum(a.sum(axis=0) ** 2)
        return float(total / (n * (n - 1)))

