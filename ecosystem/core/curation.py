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
    tilts: ClassVar[bool] = False
    """Whether the curated distribution is the exponential tilt ``p e^(r/tau) / Z`` (only :class:`Tilt`)."""

    @property
    def candidates(self) -> int:
        """Candidates drawn per curated sample in the sampling form."""
        return self.K

    def prepare(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``p``-independent part of :meth:`h` for rewards ``r`` ``(n,)`` (the Luce basis)."""
        return None if self.K == 1 else luce_basis(r / self.tau)

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
        """The highest score per row, ties broken uniformly."""
        best = scores == scores.max(axis=1, keepdims=True)
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
    every round (see :meth:`Luce.prepare`).
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
