"""Reward functions r(x): how a population of users scores a sample.

Every reward is a callable on points ``x`` of shape ``(m, d)`` returning scores of
shape ``(m,)`` (dimensionless utilities; curation uses ``r / tau``). Categorical
models evaluate the reward once on their outcome coordinates, giving a table.
Linear and quadratic rewards expose their coefficients so that Gaussian tilts have
closed forms (see :mod:`ecosystem.curation`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


class Reward:
    """Base class: ``reward(x)`` maps points ``(m, d)`` to scores ``(m,)``."""

    name: str = "reward"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def quadratic_form(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(g, Q)`` with ``r(x) = g.x - x.Q.x / 2 + const`` if the reward is such, else None."""
        return None


@dataclass(eq=False)
class Linear(Reward):
    """``r(x) = weights . x + offset``; ``weights`` has shape ``(d,)``."""

    weights: np.ndarray
    offset: float = 0.0
    name: str = "linear"

    def __post_init__(self) -> None:
        self.weights = np.atleast_1d(np.asarray(self.weights, dtype=float))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.atleast_2d(x) @ self.weights + self.offset

    def quadratic_form(self) -> tuple[np.ndarray, np.ndarray]:
        d = self.weights.size
        return self.weights, np.zeros((d, d))


@dataclass(eq=False)
class Quadratic(Reward):
    """``r(x) = g . x - (eta / 2) |x - center|^2`` (isotropic curvature ``eta >= 0``)."""

    g: np.ndarray
    eta: float = 1.0
    center: np.ndarray | None = None
    name: str = "quadratic"

    def __post_init__(self) -> None:
        self.g = np.atleast_1d(np.asarray(self.g, dtype=float))
        self.center = (
            np.zeros_like(self.g) if self.center is None
            else np.atleast_1d(np.asarray(self.center, dtype=float))
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        d = x - self.center
        return x @ self.g - 0.5 * self.eta * np.einsum("ij,ij->i", d, d)

    def alone(self, x: np.ndarray) -> np.ndarray:
        """``r`` of each row of ``x`` ``(V, d)`` bit for bit as called on that row alone, ``(V,)``:
        one stacked product of ``(1, d)`` rows (a product of all rows at once rounds differently)."""
        d = x - self.center
        return np.matmul(x[:, None, :], self.g)[:, 0] - 0.5 * self.eta * np.einsum("ij,ij->i", d, d)

    def quadratic_form(self) -> tuple[np.ndarray, np.ndarray]:
        d = self.g.size
        return self.g + self.eta * self.center, self.eta * np.eye(d)


@dataclass(eq=False)
class Tabular(Reward):
    """A reward given outcome by outcome (categorical models only); ``values`` shape ``(n,)``.

    Called on outcome coordinates it looks values up by position, so it is only
    meaningful for the space it was written for; :meth:`table` is what the engine uses.
    """

    values: np.ndarray
    name: str = "tabular"

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=float)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        if x.shape[0] != self.values.size:
            raise ValueError(
                f"tabular reward '{self.name}' has {self.values.size} values "
                f"but the space has {x.shape[0]} outcomes"
            )
        return self.values.copy()


@dataclass(eq=False)
class Ball(Reward):
    """Ferbach's hinge: ``r(x) = -gamma * max(0, |x - center| - radius)``; maximal on a ball."""

    center: np.ndarray
    radius: float = 0.0
    gamma: float = 1.0
    name: str = "ball"

    def __post_init__(self) -> None:
        self.center = np.atleast_1d(np.asarray(self.center, dtype=float))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        dist = np.linalg.norm(np.atleast_2d(x) - self.center, axis=1)
        return -self.gamma * np.maximum(0.0, dist - self.radius)


@dataclass(eq=False)
class FromCallable(Reward):
    """Any vectorised Python function ``f(x: (m, d)) -> (m,)``; for use from Python only."""

    fn: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    name: str = "callable"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(self.fn(np.atleast_2d(x)), dtype=float)
        if out.shape != (np.atleast_2d(x).shape[0],):
            raise ValueError(f"reward '{self.name}' returned shape {out.shape}, expected one score per point")
        return out


@dataclass(eq=False)
class WeightedSum(Reward):
    """``r(x) = sum_u weights[u] * rewards[u](x)``: a user population's mean preference."""

    rewards: list[Reward]
    weights: np.ndarray
    name: str = "mixture"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return sum(w * r(x) for w, r in zip(self.weights, self.rewards, strict=True))

    def quadratic_form(self) -> tuple[np.ndarray, np.ndarray] | None:
        forms = [r.quadratic_form() for r in self.rewards]
        if any(f is None for f in forms):
            return None
        return (sum(w * f[0] for w, f in zip(self.weights, forms, strict=True)),
                sum(w * f[1] for w, f in zip(self.weights, forms, strict=True)))
