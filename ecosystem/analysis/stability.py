"""Stable points, convergence and influence of curation (THEORY.md section 4).

The population-mode round is a map ``theta_{t+1} = G(theta_t; lambda)`` on the stacked
free parameters of all models (:meth:`pack`: probabilities but the last for categorical
models; mean and covariance entries for Gaussians), shape ``(D,)`` with ``D = N m``.

- :func:`stable_point`: the fixed point ``theta* = G(theta*)`` by Anderson-accelerated
  iteration (safeguarded by plain steps); reports iterations and residual.
- :func:`jacobian`: ``dG/dtheta`` at a point: exact for mean-only Gaussians whose flows
  and curation are affine (tilts of linear/quadratic rewards, affine edge transforms),
  central finite differences otherwise. Its spectral radius is the convergence
  condition (< 1: locally stable) and the predicted linear rate. Models' retraining
  rates ``eta`` (partial retraining, THEORY.md section 8) are part of the round: the
  Jacobian is ``(1 - eta) I + eta dG/dtheta`` and the stable point is unchanged.
- :func:`influence`: by the implicit function theorem,
  ``d theta*/dp = (I - dG/dtheta)^-1 dG/dp`` and ``dJ_i*/dp = grad J_i . d theta*/dp``, for
  any scalar parameter ``p`` (:class:`Parameter`: a curation ratio, real-data share,
  curator K or tau, or an edge weight), beside the first-arrival effect (``raw``): the
  one-round effect ``grad J_i . dG_i/dp`` on a model the parameter acts on directly, and for
  the others the effect when the change first reaches them (``grad J_i . (dG/dtheta)^k dG/dp``
  at the first k where it is non-zero), before the feedback loops act.
- :func:`negative_influence`: pairs with ``dJ_i*/dp < 0``; :func:`backfire`: those among them
  whose first-arrival effect is positive (locally aligned, reversed in the long run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ecosystem.core import rounds
from ecosystem.core.families import Gaussian
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rounds import RoundKernel
from ecosystem.errors import AnalysisError

# --------------------------------------------------------------------------- round map


@dataclass
class RoundMap:
    """The population round ``G`` on flat free parameters ``(D,)`` of one data-flow graph."""

    graph: nx.DiGraph
    family: object
    initial: np.ndarray
    order: str = "synchronous"
    kernel: RoundKernel = field(init=False)

    def __post_init__(self) -> None:
        self.kernel = RoundKernel(self.graph, self.family)

    @classmethod
    def of(cls, model: EcosystemModel, graph: nx.DiGraph | None = None) -> RoundMap:
        return cls(graph if graph is not None else model.graph, model.family, model.initial, model.order)

    @property
    def n_models(self) -> int:
        return len(self.kernel.models)

    def pack(self, rows: np.ndarray) -> np.ndarray:
        return self.family.pack(rows).ravel()

    def unpack(self, theta: np.ndarray) -> np.ndarray:
        return self.family.unpack(theta.reshape(self.n_models, -1), self.initial)

    def step_rows(self, rows: np.ndarray) -> np.ndarray:
        """One population round from ``rows`` ``(N, k)``, nothing retained (the engine's own
        :func:`~ecosystem.core.rounds.advance`; retention does not move the stable point)."""
        start = rounds.RoundState.start(rows, self.initial)
        return rounds.advance(self.kernel, start, mode="population", order=self.order).rows

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        return self.pack(self.step_rows(self.unpack(theta)))


# --------------------------------------------------------------------------- stable point


@dataclass
class StablePoint:
    """``theta`` ``(D,)`` and moment ``rows`` ``(N, k)`` of a fixed point of the round."""

    theta: np.ndarray
    rows: np.ndarray
    iterations: int
    residual: float
    converged: bool


def stable_point(model: EcosystemModel, *, graph: nx.DiGraph | None = None, start: np.ndarray | None = None,
                 tol: float = 1e-13, max_iter: int = 5000, memory: int = 6) -> StablePoint:
    """Fixed point of the population round of ``model`` (or of ``graph`` with its settings).

    Anderson acceleration (type II, ``memory`` past steps) with a plain step whenever the
    accelerated point is invalid or not better; Newton's method when the round is affine
    (:func:`affine_jacobian`), where it is exact. ``residual`` is ``max |G(theta) - theta|``.
    """
    g = RoundMap.of(model, graph)
    theta = g.pack(model.state if start is None else start)
    exact = affine_jacobian(g)
    if exact is not None:                      # affine round: Newton's step is exact
        it, res = 0, np.inf
        while it < 3 and res > tol:
            it += 1
            theta = theta + np.linalg.solve(np.eye(theta.size) - exact, g(theta) - theta)
            res = float(np.max(np.abs(g(theta) - theta)))
        return StablePoint(theta, g.unpack(theta), it, res, res <= tol)
    f = g(theta) - theta
    xs, fs = [theta], [f]
    res = float(np.max(np.abs(f)))
    it = 0
    while res > tol and it < max_iter:
        it += 1
        plain = theta + f
        candidate = plain
        if len(xs) > 1:
            dx = np.diff(np.array(xs[-memory - 1:]), axis=0).T
            df = np.diff(np.array(fs[-memory - 1:]), axis=0).T
            gamma, *_ = np.linalg.lstsq(df, f, rcond=None)
            candidate = plain - (dx + df) @ gamma
        new, new_f, new_res = _evaluate(g, candidate)
        if candidate is not plain and not (new_res < res * 1.5):
            new, new_f, new_res = _evaluate(g, plain)
            xs, fs = [], []
        if not np.isfinite(new_res):
            raise AnalysisError("the round map left its domain while searching for a stable point")
        theta, f, res = new, new_f, new_res
        xs.append(theta)
        fs.append(f)
    return StablePoint(theta, g.unpack(theta), it, res, res <= tol)


def _evaluate(g: RoundMap, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    rows = g.unpack(theta)
    if g.family.admissible(rows):
        with np.errstate(all="ignore"):
            f = g(theta) - theta
        if np.all(np.isfinite(f)):
            return theta, f, float(np.max(np.abs(f)))
    return theta, np.full_like(theta, np.nan), np.inf


# --------------------------------------------------------------------------- Jacobian


def jacobian(model: EcosystemModel, theta: np.ndarray, *, graph: nx.DiGraph | None = None,
             step: float = 1e-5) -> np.ndarray:
    """``dG/dtheta`` ``(D, D)`` at ``theta``: exact when affine (see module), else central differences."""
    g = RoundMap.of(model, graph)
    exact = affine_jacobian(g)
    if exact is not None:
        return exact
    return numerical_jacobian(g, theta, step)


def numerical_jacobian(g: RoundMap, theta: np.ndarray, step: float) -> np.ndarray:
    cols = []
    for j in range(theta.size):
        h = difference_step(g, theta, j, step)
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        cols.append((g(up) - g(down)) / (2 * h))
    return np.array(cols).T


def difference_step(g: RoundMap, theta: np.ndarray, j: int, step: float) -> float:
    """A difference step for free parameter ``j`` of ``theta`` that keeps its model admissible
    (:meth:`~ecosystem.core.families.Family.difference_step`)."""
    per_model = theta.size // g.n_models
    return g.family.difference_step(g.unpack(theta)[j // per_model], j % per_model, theta[j], step)


def affine_jacobian(g: RoundMap) -> np.ndarray | None:
    """Exact ``dG/dtheta`` when the round is affine in the model means, else None.

    Affine: mean-only Gaussians (``covariance="fixed"``), synchronous order, curators that
    tilt linear or quadratic rewards. Each node's mean is then ``A_v theta + b_v``; a model with
    retraining rate ``eta`` has the rows ``(1 - eta) I + eta dG/dtheta`` (THEORY.md section 8).
    """
    fam, k = g.family, g.kernel
    if not (isinstance(fam, Gaussian) and fam.covariance == "fixed" and g.order == "synchronous"):
        return None
    forms = {}
    for c, cur in k.curator_of.items():
        quad = [r.quadratic_form() for r in cur.rewards]
        if not cur.rule.tilts or any(f is None for f in quad):
            return None
        forms[c] = (cur, quad)
    d, n = fam.dim, g.n_models
    _, cov = fam.mean_cov(np.concatenate([g.initial, k.fixed[n:]]))
    slope = np.zeros((len(k.nodes), d, n * d))
    for i in range(n):
        slope[i, :, i * d:(i + 1) * d] = np.eye(d)
    for level in k.levels:
        for v in level:
            if k.kind[v] == "pool":
                row = k.pool_mixing[v]
                slope[v] = sum(w * slope[u] for u, w in zip(row.indices, row.data, strict=True))
            else:
                cur, quad = forms[v]
                p = k.producer[v]
                shrink = sum(nu * np.linalg.inv(np.eye(d) + cov[p] @ q / cur.rule.tau)
                             for nu, (_, q) in zip(cur.weights, quad, strict=True))
                slope[v] = shrink @ slope[p]
    e = k.edges
    out = np.zeros((n * d, n * d))
    for src, dst, w, t in zip(e.src, e.dst, e.weight, e.transform, strict=True):
        a = slope[src] if t < 0 else np.asarray(k.transforms[t][0]) @ slope[src]
        out[dst * d:(dst + 1) * d] += w * a
    if (k.retraining_rate < 1).any():         # partial retraining: (1 - eta) I + eta dG/dtheta, per model
        eta = np.repeat(k.retraining_rate, d)
        out = eta[:, None] * out + np.diag(1.0 - eta)
    return out


def inert(jac: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Coordinates ``(D,)`` the round leaves as they are and that move nothing else: row and column
    ``j`` of ``jac`` are the unit vector (e.g. a conditional model's answers at inputs it never
    gets training pairs for). They are neutral (eigenvalue exactly 1) and left out of the
    convergence condition and the influence."""
    unit = np.eye(len(jac))
    return np.all(np.abs(jac - unit) <= tol, axis=1) & np.all(np.abs(jac - unit) <= tol, axis=0)


def spectral_radius(jac: np.ndarray) -> float:
    """Largest modulus of the eigenvalues of ``jac`` on its moving coordinates (not :func:`inert`)."""
    live = ~inert(jac)
    return float(np.max(np.abs(np.linalg.eigvals(jac[np.ix_(live, live)])))) if live.any() else 0.0
