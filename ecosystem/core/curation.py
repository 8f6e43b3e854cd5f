"""Human curation: choice rules in a sampling form and an exact population form.

A curator is a population of user types ``u`` (rewards ``r_u``, weights ``nu_u``) and a
choice rule. Each curated sample is judged by one random user, who keeps one of ``K``
candidates drawn from the producer:

- ``Luce(K, tau)``: keep ``x_k`` with probability ``exp(r(x_k)/tau) / sum_j exp(r(x_j)/tau)``
  (``K = 2`` is Bradley-Terry);
- ``BestOfK(K)``: keep the highest reward, ties broken uniformly (``tau -> 0``);
- ``Tilt(tau)``: the ``K -> infinity`` limit, ``p(x) exp(r(x)/tau) / E_p[exp(r/tau)]``.

Population form (THEORY.md section 1): the curated distribution is ``p * H`` with
``sum_x p(x) H(x) = 1``. For Luce, with ``rho = r / tau`` and ``u = exp(-s)``::

    H(x) = K * integral g(rho(x) - s) * L(s)^(K-1) ds,
    g(y) = exp(y - e^y) (the Gumbel density),  L(s) = E_{z~p}[exp(-exp(rho(z) - s))],

the exponential-race form of the identity in THEORY.md. Everything is in the log
domain, so rewards of any scale neither overflow nor produce NaN; the integral is a
trapezoid rule on a uniform grid (step :data:`GRID_STEP`) in a coordinate ``t``, which is
spectrally accurate for this smooth integrand, doubly decaying on the left. ``s ~ t`` where
the scores are; right of the top score the integrand is a plain exponential
``K exp(rho(x) - s)`` and the nodes follow ``s = t + exp(t - 3)`` (:data:`_TAIL_BEND`),
so 22 nodes reach ``s = 43`` where a uniform grid needs 100 to reach ``s = 30``.
Many models with the same curator share ``rho``, and then one round is two matrix
products for all of them.

The dense form keeps an ``(n, S)`` basis (``S`` grid points) and is used when it is small
and its grid coordinates are resolved by the floats (:func:`luce_dense_ok`). Otherwise
:func:`luce_h` switches to the *banded* form (:func:`luce_h_banded`): the same integral,
computed per cluster of scores in the cluster's own coordinates (so ``|r|/tau`` of any
finite size keeps the grid exactly uniform), each grid point touching only the outcomes
whose race density is non-zero there (the others count as ``phi = 1`` below it, ``0``
above it, exact in double precision), in chunks of grid points of bounded memory
(:data:`CHUNK_ELEMENTS`). Scores whose clusters are far apart (``|r|/tau`` large) reduce
exactly to the best-of-K level-set form.

Best-of-K ties: rewards equal within the relative tolerance :data:`TIE_RTOL` are ties
(``|a - b| <= TIE_RTOL * max(|a|, |b|)``), in both the sampling choice and the population
operator, so that rewards that differ only by rounding (``-x^2`` at ``x = 0.9`` and
``-0.9`` on a ``linspace`` grid) share their level's mass.

Each rule owns its operators: ``candidates`` (per curated sample), ``choose`` (the
sampling form), ``h`` (the population operator) with ``prepare`` (its reusable,
``p``-independent part), and ``tilts`` (whether it is the exponential tilt).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from ecosystem.core.rewards import Reward, WeightedSum

GRID_STEP = 0.3
"""Trapezoid step in the grid coordinate ``t`` of the Luce integral (sum p H = 1 to ~1e-12)."""

_LEFT, _RIGHT = 5.0, 30.0
"""The integrand for outcome x is below 1e-13 outside s in [rho(x) - 5, rho(x) + 30]."""

_TAIL_BEND, _TAIL_STOP = 3.0, 6.6
"""The top run of grid points (scores shifted to ``max rho = 0``) has nodes
``s = t + exp(t - _TAIL_BEND)`` for ``t = k * GRID_STEP`` up to ``_TAIL_STOP`` (``s`` = 43:
the tail left out is below ``K s e^-s``, 1e-15 for K = 100); the identity to 5% where the
scores are (``t <= 0``). A sharper bend (2) narrows the integrand's strip of analyticity:
errors 1e-8 against 1e-11 at bend 3 (K up to 100, against a trapezoid of step 0.02)."""

DENSE_SPAN = 1e4
"""The largest score spread ``max rho - min rho`` of the dense form: its grid coordinates
``s`` reach this size, and ``|s| * 1e-16`` stays below 1e-12."""

DENSE_BYTES = 256 * 2**20
"""The largest dense basis ``(n, S)`` (two float arrays) kept; beyond it the banded form."""

DENSE_K = 100
"""The largest ``K`` of the dense form (its window ``_RIGHT`` leaves a tail of ``K e^-30``)."""

BAND_STEP = 0.25
"""Grid step of the banded form, exactly representable (``k * BAND_STEP`` is exact)."""

_BAND_LEFT, _BAND_RIGHT = 7.0, 37.0
"""Banded form: outcome z enters grid point s exactly when ``rho(z) - s`` is in
``[-(_BAND_RIGHT + log K), _BAND_LEFT]``; above it ``phi = exp(-e^7) = 0`` in double
precision, below it ``1 - phi < e^-37 / K``."""

CHUNK_ELEMENTS = 2**22
"""Banded form: at most this many matrix entries per chunk (non-zeros of the band and
``N x`` grid points), i.e. about 100 MiB of work arrays whatever ``n``, ``N`` or ``S``."""

TIE_RTOL = 1e-12
"""Best-of-K: rewards ``a``, ``b`` with ``|a - b| <= TIE_RTOL * max(|a|, |b|)`` are a tie
(sorted rewards chain: a level ends where the gap to the next exceeds the tolerance)."""


@dataclass(frozen=True)
class Luce:
    """Luce choice among ``K`` candidates with temperature ``tau`` (> 0)."""

    K: int = 2
    tau: float = 1.0
    tilts: ClassVar[bool] = False
    """Whether the curated distribution is the exponential tilt ``p e^(r/tau) / Z`` (only :class:`Tilt`)."""

    @property
    def candidates(self) -> int:
        """Candidates drawn per curated sample in the sampling form."""
        return self.K

    def prepare(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``p``-independent part of :meth:`h` for rewards ``r`` ``(n,)``: the dense Luce basis
        ``(phi, gumbel)`` ``(n, S)`` each, or None when the banded form runs (it keeps nothing
        between calls; see :func:`luce_dense_ok`)."""
        if self.K == 1:
            return None
        rho = r / self.tau
        return luce_basis(rho) if luce_dense_ok(rho, self.K) else None

    def h(self, p: np.ndarray, r: np.ndarray, prepared: object = None) -> np.ndarray:
        """Population operator ``H`` ``(N, n)`` for rows ``p`` ``(N, n)`` and rewards ``r`` ``(n,)``;
        ``prepared``: :meth:`prepare` of ``r``, if at hand."""
        return luce_h(p, r / self.tau, self.K, prepared)

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Index of the kept candidate per row of candidate rewards ``scores`` ``(S, K)``,
        sampled exactly by the Gumbel-max trick."""
        return np.argmax(scores / self.tau + rng.gumbel(size=scores.shape), axis=1)


@dataclass(frozen=True)
class BestOfK:
    """Keep the best of ``K`` candidates (ties uniformly)."""

    K: int = 2
    tilts: ClassVar[bool] = False

    @property
    def candidates(self) -> int:
        return self.K

    def prepare(self, r: np.ndarray) -> None:
        return None

    def h(self, p: np.ndarray, r: np.ndarray, prepared: object = None) -> np.ndarray:
        return best_of_k_h(p, r, self.K)

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The highest score per row of ``scores`` ``(S, K)``, ties (within :data:`TIE_RTOL`)
        broken uniformly."""
        top = scores.max(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            best = (scores == top) | (top - scores <= TIE_RTOL * np.maximum(np.abs(scores), np.abs(top)))
        return np.argmax(best * rng.random(scores.shape), axis=1)


@dataclass(frozen=True)
class Tilt:
    """Exponential tilt by ``exp(r/tau)`` (``K -> infinity``).

    Sampling form: exact draws from the tilted distribution when the family knows it (a
    model or source producer; categorical, or Gaussian with linear/quadratic rewards);
    otherwise ``candidates`` candidates picked by Luce choice
    (sampling-importance-resampling), exact as ``candidates -> infinity``.
    """

    tau: float = 1.0
    candidates: int = 1000
    tilts: ClassVar[bool] = True

    def prepare(self, r: np.ndarray) -> None:
        return None

    def h(self, p: np.ndarray, r: np.ndarray, prepared: object = None) -> np.ndarray:
        return tilt_h(p, r / self.tau)

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.argmax(scores / self.tau + rng.gumbel(size=scores.shape), axis=1)


ChoiceRule = Luce | BestOfK | Tilt
"""A choice rule: ``candidates``, ``tilts``, ``prepare(r)``, ``h(p, r, prepared)`` and ``choose(scores, rng)``."""


@dataclass(eq=False)
class Curator:
    """A population of user types judging samples with one choice rule.

    ``rewards[u]`` is the reward of user type ``u``; ``weights[u]`` its share ``nu_u``
    (normalised to sum to 1).
    """

    rule: ChoiceRule
    rewards: list[Reward]
    weights: np.ndarray = field(default_factory=lambda: np.ones(1))

    def __post_init__(self) -> None:
        w = np.broadcast_to(np.asarray(self.weights, dtype=float), (len(self.rewards),)).copy()
        if len(self.rewards) == 0 or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("a curator needs at least one user type with a positive weight")
        self.weights = w / w.sum()

    @property
    def tau(self) -> float:
        return getattr(self.rule, "tau", 1.0)

    @cached_property
    def preference(self) -> Reward:
        """The users' mean reward ``sum_u nu_u r_u`` (the reward itself for one user type)."""
        if len(self.rewards) == 1:
            return self.rewards[0]
        return WeightedSum(self.rewards, self.weights, name="+".join(r.name for r in self.rewards))

    def with_rule(self, **changes: float) -> Curator:
        """The same users with the rule's fields changed, e.g. ``with_rule(K=4)``; raises
        ``ValueError`` naming a field the rule does not have."""
        known = {f.name for f in dataclasses.fields(self.rule)}
        for key in changes:
            if key not in known:
                raise ValueError(f"the {type(self.rule).__name__} rule has no {key}")
        return Curator(dataclasses.replace(self.rule, **changes), self.rewards, self.weights)

    def one_user(self, u: int) -> Curator:
        """The curator of user type ``u`` alone."""
        return Curator(self.rule, [self.rewards[u]])

    def h(self, p: np.ndarray, rewards: np.ndarray, prepared: list | None = None) -> np.ndarray:
        """``E_u[H_{p, r_u}]`` ``(N, n)`` for rows ``p`` ``(N, n)``; ``rewards`` ``(U, n)`` holds ``r_u``
        per outcome; ``prepared``: the rule's :meth:`prepare` of each row of ``rewards``."""
        out = None
        for u, (nu, r) in enumerate(zip(self.weights, rewards, strict=True)):
            h = self.rule.h(p, r, None if prepared is None else prepared[u])
            if out is None and nu == 1.0:  # one user type: H itself (0 + 1 * H)
                out = np.asarray(h, dtype=float)
            else:
                out = (np.zeros_like(np.atleast_2d(p), dtype=float) if out is None else out) + nu * h
        return out

    def curate(self, p: np.ndarray, rewards: np.ndarray, prepared: list | None = None) -> np.ndarray:
        """Curated distributions ``p H`` ``(N, n)``, renormalised (mass errors grow K-fold per round)."""
        q = np.atleast_2d(p) * self.h(p, rewards, prepared)
        return q / q.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- population


def _runs(rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of grid indices ``k`` (``t = k * GRID_STEP``) covering every outcome's window for
    scores ``rho`` ``(n,)`` with ``max rho = 0``, gaps between windows skipped: first and last
    ``k`` of each run, the top run ending at the tail map's end."""
    levels = np.unique(rho)
    lo = np.floor((levels - _LEFT) / GRID_STEP)
    hi = np.ceil((levels + _RIGHT) / GRID_STEP)
    # union of the windows [lo, hi]: a window starts a new run when it begins after all before it end
    reach = np.maximum.accumulate(hi)
    begin = np.flatnonzero(np.r_[True, lo[1:] > reach[:-1]])
    ends = np.r_[reach[begin[1:] - 1], np.ceil(_TAIL_STOP / GRID_STEP)]
    return lo[begin].astype(np.int64), ends.astype(np.int64)


def _luce_grid(rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``s`` and trapezoid weights ``ds`` ``(S,)`` for scores ``rho`` ``(n,)`` with
    ``max rho = 0``: uniform in ``s`` on the lower runs, ``s = t + exp(t - _TAIL_BEND)`` on the top one."""
    first, last = _runs(rho)
    t = np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last, strict=True)]) * GRID_STEP
    bend = np.zeros_like(t)
    top = t.size - (last[-1] - first[-1] + 1)
    bend[top:] = np.exp(t[top:] - _TAIL_BEND)
    return t + bend, GRID_STEP * (1.0 + bend)


def luce_basis(rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``p``-independent part of :func:`luce_h` for scores ``rho`` ``(n,)``: ``(phi, gumbel)``, ``(n, S)``:
    each node's survival ``phi`` and race density times its quadrature weight.

    It depends on the scores only, so a curator whose rewards do not change can reuse it
    every round (see :meth:`Luce.prepare`).
    """
    rho = np.asarray(rho, dtype=float)
    rho = rho - rho.max()
    s, ds = _luce_grid(rho)
    e = np.exp(np.minimum(rho[:, None] - s[None, :], 50.0))   # (n, S); beyond 50 both terms are 0
    phi = np.exp(-e)                                   # P(one candidate's race time > u)
    gumbel = (e * phi) * ds                            # race density exp(y - e^y) = d phi / ds, times ds
    return phi, gumbel


def _grid_size(rho: np.ndarray) -> int:
    """Number of points :func:`_luce_grid` gives for scores ``rho`` ``(n,)``, without making them."""
    first, last = _runs(rho)
    return int(np.sum(last - first + 1))


def luce_dense_ok(rho: np.ndarray, K: int) -> bool:
    """Whether the dense form (:func:`luce_basis`) is exact to 1e-9 and small for scores
    ``rho`` ``(n,)``: spread at most :data:`DENSE_SPAN`, ``K`` at most :data:`DENSE_K` and a
    basis of at most :data:`DENSE_BYTES`."""
    rho = np.asarray(rho, dtype=float)
    if K > DENSE_K or not np.all(np.isfinite(rho)):
        return False
    spread = float(rho.max() - rho.min())
    if not spread <= DENSE_SPAN:
        return False
    return 16 * rho.size * _grid_size(rho - rho.max()) <= DENSE_BYTES


def luce_h(p: np.ndarray, rho: np.ndarray, K: int,
           basis: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Luce population operator ``H`` for rows ``p`` ``(N, n)`` sharing scores ``rho`` ``(n,)``.

    Returns ``H`` ``(N, n)``, with ``sum_x p H = 1`` per row to about 1e-12 (1e-9 at worst,
    for any finite scores and ``K``). ``basis``: :func:`luce_basis` of ``rho``, if already at
    hand (the dense form); without it, the dense form when :func:`luce_dense_ok`, else the
    banded form :func:`luce_h_banded`.
    """
    p = np.atleast_2d(p)
    if K == 1:
        return np.ones_like(p)
    if basis is None:
        if not luce_dense_ok(rho, K):
            return luce_h_banded(p, rho, K)
        basis = luce_basis(rho)
    phi, gumbel = basis
    survival = p @ phi                                 # L(s), (N, S)
    with np.errstate(divide="ignore"):
        weight = np.exp((K - 1) * np.log(survival))
    return K * (weight @ gumbel.T)


def luce_h_banded(p: np.ndarray, rho: np.ndarray, K: int, chunk: int = CHUNK_ELEMENTS) -> np.ndarray:
    """Luce population operator ``H`` ``(N, n)`` for rows ``p`` ``(N, n)`` and scores ``rho`` ``(n,)``,
    exact for scores of any finite spread, in memory bounded by ``chunk`` matrix entries.

    The integral of the module docstring on a grid of step :data:`BAND_STEP`, one grid per
    *cluster* of scores (sorted scores whose gaps are below the band's width), placed in the
    cluster's own coordinates ``t = rho - max(cluster)``: grid points ``k * BAND_STEP`` are
    exact floats and ``t - s`` is exact, whatever the size of ``rho``. At grid point ``s``
    an outcome ``z`` with ``t(z) - s`` in ``[-(37 + log K), 7]`` enters ``L(s)`` with its
    ``phi`` and ``H`` with its race density; outcomes below the band enter ``L`` with their
    whole mass (``phi = 1`` to double precision), outcomes above it not at all (``phi = 0``
    exactly). Work per chunk of grid points: one sparse product for ``L``, one for ``H``.
    Clusters of one score give the best-of-K level form ``((b + m)^K - b^K) / m``.
    """
    p = np.atleast_2d(np.asarray(p, dtype=float))
    rho = np.asarray(rho, dtype=float)
    N, n = p.shape
    if K == 1:
        return np.ones_like(p)
    order = np.argsort(rho, kind="stable")
    v = rho[order]
    h = BAND_STEP
    right, left = _BAND_RIGHT + np.log(K), _BAND_LEFT
    span = right + left + 2 * h
    gap = np.diff(v) > span
    cid = np.r_[0, np.cumsum(gap)]                      # cluster of each sorted outcome
    first = np.r_[0, np.flatnonzero(gap) + 1]           # first outcome of each cluster
    last = np.r_[first[1:] - 1, n - 1]
    anchor = v[last]
    t = v - anchor[cid]   # local coordinates <= 0: exact within a factor 2 of the anchor, else rounded like rho
    width = -t[first]
    kmin = np.floor((t[first] - left) / h).astype(np.int64)
    kmax = np.ceil(right / h).astype(np.int64) + np.zeros_like(kmin)
    ncol = np.where(width > 0, kmax - kmin + 1, 0)     # one score: the level form, no grid
    col_start = np.r_[0, np.cumsum(ncol)]               # global column offsets per cluster
    # a monotone key over all clusters (only to find the band; y itself is computed exactly)
    offset = np.cumsum(width + 4 * span)                # cluster c: keys in [offset_c - width_c, offset_c]
    key = t + offset[cid]
    ps = p[:, order]
    below = np.zeros((N, n + 1))
    np.cumsum(ps, axis=1, out=below[:, 1:])             # mass of the outcomes before each index
    out = np.zeros((N, n))
    total = int(col_start[-1])
    step_cols = max(1, min(chunk // max(N, 1), total))
    j0 = 0
    while j0 < total:
        j1 = min(total, j0 + step_cols)
        cols = np.arange(j0, j1)
        c = np.searchsorted(col_start, cols, side="right") - 1
        s = (kmin[c] + (cols - col_start[c])) * h        # exact local grid points
        s_key = s + offset[c]
        b = np.searchsorted(key, s_key - right, side="left")
        e = np.searchsorted(key, s_key + left, side="right")
        counts = e - b
        nnz = np.cumsum(counts)
        if nnz[-1] > chunk and len(cols) > 1:            # too many band entries: fewer grid points
            j1 = j0 + max(1, int(np.searchsorted(nnz, chunk, side="right")))
            cols, c, s, b, e, counts = cols[: j1 - j0], c[: j1 - j0], s[: j1 - j0], b[: j1 - j0], \
                e[: j1 - j0], counts[: j1 - j0]
        lo, hi = int(b[0]), int(e[-1])
        if hi > lo:
            indptr = np.r_[0, np.cumsum(counts)]
            idx = np.arange(indptr[-1]) - np.repeat(indptr[:-1] - (b - lo), counts)
            y = t[lo + idx] - np.repeat(s, counts)
            ey = np.exp(np.minimum(y, 50.0))
            phi = np.exp(-ey)
            shape = (len(cols), hi - lo)
            band_phi = sp.csr_matrix((phi, idx, indptr), shape=shape)
            band_g = sp.csr_matrix((ey * phi, idx, indptr), shape=shape)
            survival = below[:, b] + (band_phi @ ps[:, lo:hi].T).T     # L(s), (N, C)
        else:
            survival = below[:, b]
        with np.errstate(divide="ignore"):
            weight = np.exp((K - 1) * np.log(survival))
        if hi > lo:
            out[:, lo:hi] += (band_g.T @ weight.T).T
        j0 = j1
    out *= K * h
    single = np.flatnonzero(width == 0)
    if single.size:                                     # isolated levels: exactly best-of-K
        mass = np.add.reduceat(ps, first, axis=1)[:, single]   # summed, not a difference of sums
        level = level_h(below[:, first[single]], mass, K)
        slot = np.full(len(first), -1)
        slot[single] = np.arange(single.size)
        members = width[cid] == 0
        out[:, members] = level[:, slot[cid[members]]]
    result = np.empty_like(out)
    result[:, order] = out
    return result


def best_of_k_h(p: np.ndarray, rho: np.ndarray, K: int) -> np.ndarray:
    """Best-of-K population operator, exact: ``H = ((b + m)^K - b^K) / m`` on each level set.

    ``p`` ``(N, n)``, rewards ``rho`` ``(n,)``; returns ``H`` ``(N, n)``. ``m`` is the mass of the
    outcome's reward level, ``b`` the mass strictly below it; rewards within
    :data:`TIE_RTOL` of each other are one level (:func:`tie_levels`).
    """
    p = np.atleast_2d(p)
    rho = np.asarray(rho)
    order = np.argsort(rho, kind="stable")
    starts = tie_levels(rho[order])
    mass = np.add.reduceat(p[:, order], starts, axis=1)        # (N, levels)
    below = np.concatenate([np.zeros((len(p), 1)), np.cumsum(mass, axis=1)[:, :-1]], axis=1)
    h_level = level_h(below, mass, K)
    level_of = np.empty(len(rho), dtype=np.int64)
    level_of[order] = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(rho))))
    return h_level[:, level_of]


def level_h(below: np.ndarray, mass: np.ndarray, K: int) -> np.ndarray:
    """Best-of-K ``H = ((b + m)^K - b^K) / m`` of a level of mass ``m`` above mass ``b`` (arrays
    of one shape), without cancellation (``K b^(K-1)`` for an empty level)."""
    top = below + mass
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # small x = m / b: b^(K-1) expm1(K log1p(x)) / x has no cancellation; x -> 0: K b^(K-1)
        x = mass / below
        series = np.where(x > 0, np.expm1(K * np.log1p(x)) / x, float(K))
        h_level = np.where(x <= 1, below ** (K - 1) * series, (top**K - below**K) / mass)
        bad = ~np.isfinite(h_level) & (mass > 0)
        if bad.any():   # large K: b^(K-1) underflows while the series overflows; in logs instead
            xb, a = x[bad], K * np.log1p(x[bad])
            log_series = np.where(xb > 0, a + np.log(-np.expm1(-a)) - np.log(xb), np.log(float(K)))
            small = np.exp((K - 1) * np.log(below[bad]) + log_series)
            large = np.exp(K * np.log(top[bad]) - np.log(mass[bad])) * -np.expm1(K * np.log(below[bad] / top[bad]))
            h_level[bad] = np.where(xb <= 1, small, large)
        h_level = np.where(mass > 0, h_level, K * below ** (K - 1))
    return h_level


def tie_levels(v: np.ndarray) -> np.ndarray:
    """Start indices of the reward levels of sorted rewards ``v`` ``(n,)``: a level ends where
    the gap to the next reward exceeds ``TIE_RTOL * max(|a|, |b|)`` of the two."""
    v = np.asarray(v, dtype=float)
    if v.size == 0:
        return np.zeros(0, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        tie = (v[1:] == v[:-1]) | (np.diff(v) <= TIE_RTOL * np.maximum(np.abs(v[1:]), np.abs(v[:-1])))
    return np.r_[0, np.flatnonzero(~tie) + 1]


def tilt_h(p: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Tilt operator ``H = exp(rho) / E_p[exp(rho)]``, computed in the log domain."""
    p = np.atleast_2d(p)
    with np.errstate(divide="ignore"):
        log_z = logsumexp(np.log(p) + rho[None, :], axis=1, keepdims=True)
    return np.exp(rho[None, :] - log_z)
