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
trapezoid rule on a grid in ``s`` (step :data:`GRID_STEP`), which is spectrally
accurate for this smooth, doubly-decaying integrand. Many models with the same
curator share ``rho``, and then one round is two matrix products for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.special import logsumexp

from ecosystem.core.rewards import Reward, WeightedSum

GRID_STEP = 0.3
"""Trapezoid step in ``s = -log u`` for the Luce integral (sum p H = 1 to ~1e-12)."""

_LEFT, _RIGHT = 5.0, 30.0
"""The integrand for outcome x is below 1e-13 outside s in [rho(x) - 5, rho(x) + 30]."""


@dataclass(frozen=True)
class Luce:
    """Luce choice among ``K`` candidates with temperature ``tau`` (> 0)."""

    K: int = 2
    tau: float = 1.0


@dataclass(frozen=True)
class BestOfK:
    """Keep the best of ``K`` candidates (ties uniformly)."""

    K: int = 2


@dataclass(frozen=True)
class Tilt:
    """Exponential tilt by ``exp(r/tau)`` (``K -> infinity``).

    Sampling form: exact draws from the tilted distribution when it is known (a model
    or source producer; categorical, or Gaussian with linear/quadratic rewards);
    otherwise ``candidates`` candidates picked by Luce choice
    (sampling-importance-resampling), exact as ``candidates -> infinity``.
    """

    tau: float = 1.0
    candidates: int = 1000


ChoiceRule = Luce | BestOfK | Tilt


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


# --------------------------------------------------------------------------- population


def _luce_grid(rho: np.ndarray) -> np.ndarray:
    """Grid points ``s`` covering every outcome's window, gaps between windows skipped."""
    lo = np.floor((np.unique(rho) - _LEFT) / GRID_STEP).astype(np.int64)
    hi = np.ceil((np.unique(rho) + _RIGHT) / GRID_STEP).astype(np.int64)
    ks = []
    start, stop = lo[0], hi[0]
    for a, b in zip(lo[1:], hi[1:], strict=True):
        if a > stop:
            ks.append(np.arange(start, stop + 1))
            start = a
        stop = max(stop, b)
    ks.append(np.arange(start, stop + 1))
    return np.concatenate(ks) * GRID_STEP


def luce_basis(rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``p``-independent part of :func:`luce_h` for scores ``rho`` ``(n,)``: ``(phi, gumbel)``, ``(n, S)``.

    It depends on the scores only, so a curator whose rewards do not change can reuse it
    every round (see :func:`population_h`'s ``bases``).
    """
    rho = np.asarray(rho, dtype=float)
    rho = rho - rho.max()
    s = _luce_grid(rho)
    e = np.exp(np.minimum(rho[:, None] - s[None, :], 50.0))   # (n, S); beyond 50 both terms are 0
    phi = np.exp(-e)                                   # P(one candidate's race time > u)
    gumbel = e * phi                                   # race density exp(y - e^y), = d phi / ds
    return phi, gumbel


def luce_h(p: np.ndarray, rho: np.ndarray, K: int,
           basis: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Luce population operator ``H`` for rows ``p`` ``(N, n)`` sharing scores ``rho`` ``(n,)``.

    Returns ``H`` ``(N, n)``, with ``sum_x p H = 1`` per row up to the quadrature error.
    ``basis``: :func:`luce_basis` of ``rho``, if already at hand.
    """
    p = np.atleast_2d(p)
    if K == 1:
        return np.ones_like(p)
    phi, gumbel = luce_basis(rho) if basis is None else basis
    survival = p @ phi                                 # L(s), (N, S)
    with np.errstate(divide="ignore"):
        weight = np.exp((K - 1) * np.log(survival))
    return (K * GRID_STEP) * (weight @ gumbel.T)


def best_of_k_h(p: np.ndarray, rho: np.ndarray, K: int) -> np.ndarray:
    """Best-of-K population operator, exact: ``H = ((b + m)^K - b^K) / m`` on each level set.

    ``m`` is the mass of the outcome's reward level, ``b`` the mass strictly below it.
    """
    p = np.atleast_2d(p)
    order = np.argsort(rho, kind="stable")
    levels, starts = np.unique(np.asarray(rho)[order], return_index=True)
    mass = np.add.reduceat(p[:, order], starts, axis=1)        # (N, levels)
    below = np.concatenate([np.zeros((len(p), 1)), np.cumsum(mass, axis=1)[:, :-1]], axis=1)
    top = below + mass
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # small x = m / b: b^(K-1) expm1(K log1p(x)) / x has no cancellation; x -> 0: K b^(K-1)
        x = mass / below
        series = np.where(x > 0, np.expm1(K * np.log1p(x)) / x, float(K))
        h_level = np.where(x <= 1, below ** (K - 1) * series, (top**K - below**K) / mass)
        h_level = np.where(mass > 0, h_level, K * below ** (K - 1))
    level_of = np.empty(len(rho), dtype=np.int64)
    level_of[order] = np.repeat(np.arange(len(levels)), np.diff(np.append(starts, len(rho))))
    return h_level[:, level_of]


def tilt_h(p: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Tilt operator ``H = exp(rho) / E_p[exp(rho)]``, computed in the log domain."""
    p = np.atleast_2d(p)
    with np.errstate(divide="ignore"):
        log_z = logsumexp(np.log(p) + rho[None, :], axis=1, keepdims=True)
    return np.exp(rho[None, :] - log_z)


BASIS_CACHE_BYTES = 256 * 2**20
"""Memory bound of a ``bases`` cache of :func:`population_h` (cleared when exceeded)."""


def population_h(curator: Curator, p: np.ndarray, rewards: np.ndarray, bases: dict | None = None) -> np.ndarray:
    """``E_u[H_{p, r_u}]`` for rows ``p`` ``(N, n)``; ``rewards`` ``(U, n)`` holds ``r_u`` per outcome.

    ``bases``: a dict kept by the caller across calls, caching Luce bases by score values
    (the numbers are the same with or without it).
    """
    rule = curator.rule
    out = None
    for nu, r in zip(curator.weights, rewards, strict=True):
        if isinstance(rule, Luce):
            rho = r / rule.tau
            h = luce_h(p, rho, rule.K, None if bases is None or rule.K == 1 else _cached_basis(bases, rho))
        elif isinstance(rule, BestOfK):
            h = best_of_k_h(p, r, rule.K)
        else:
            h = tilt_h(p, r / rule.tau)
        if out is None and nu == 1.0:  # one user type: H itself (0 + 1 * H)
            out = np.asarray(h, dtype=float)
        else:
            out = (np.zeros_like(np.atleast_2d(p), dtype=float) if out is None else out) + nu * h
    return out


def _cached_basis(bases: dict, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    key = np.ascontiguousarray(rho, dtype=float).tobytes()
    basis = bases.get(key)
    if basis is None:
        basis = luce_basis(rho)
        if sum(a.nbytes + b.nbytes for a, b in bases.values()) + 2 * basis[0].nbytes > BASIS_CACHE_BYTES:
            bases.clear()
        bases[key] = basis
    return basis


def curate_distribution(curator: Curator, p: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """Curated distributions ``p H`` ``(N, n)``, renormalised (mass errors grow K-fold per round)."""
    q = np.atleast_2d(p) * population_h(curator, p, rewards)
    return q / q.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- sampling


def choose(curator: Curator, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index of the kept candidate per row of candidate rewards ``scores`` ``(S, K)``.

    ``scores`` are the rewards of the user judging that row (already drawn from ``nu``).
    Luce choice is sampled exactly by the Gumbel-max trick.
    """
    rule = curator.rule
    if isinstance(rule, BestOfK):
        best = scores == scores.max(axis=1, keepdims=True)
        return np.argmax(best * rng.random(scores.shape), axis=1)
    return np.argmax(scores / rule.tau + rng.gumbel(size=scores.shape), axis=1)


def candidates_per_sample(curator: Curator) -> int:
    """How many candidates one curated sample needs in the sampling form."""
    rule = curator.rule
    return rule.candidates if isinstance(rule, Tilt) else rule.K
