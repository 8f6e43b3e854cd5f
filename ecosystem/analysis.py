"""Stable points, convergence and influence of curation (THEORY.md section 4).

The population-mode round is a map ``theta_{t+1} = G(theta_t; lambda)`` on the stacked
free parameters of all models (:meth:`pack`: probabilities but the last for categorical
models; mean and covariance entries for Gaussians), shape ``(D,)`` with ``D = N m``.

- :func:`stable_point`: the fixed point ``theta* = G(theta*)`` by Anderson-accelerated
  iteration (safeguarded by plain steps); reports iterations and residual.
- :func:`jacobian`: ``dG/dtheta`` at a point: exact for mean-only Gaussians whose flows
  and curation are affine (tilts of linear/quadratic rewards, affine edge transforms),
  central finite differences otherwise. Its spectral radius is the convergence
  condition (< 1: locally stable) and the predicted linear rate.
- :func:`influence`: by the implicit function theorem,
  ``d theta*/dp = (I - dG/dtheta)^-1 dG/dp`` and ``dJ_i*/dp = grad J_i . d theta*/dp``, for
  any scalar parameter ``p`` (:class:`Parameter`: a curation ratio, real-data share,
  curator K or tau, or an edge weight), beside the raw effect: the one-round effect
  ``grad J_i . dG_i/dp`` on a model the parameter acts on directly, and for the others
  the effect when the change first reaches them (``grad J_i . (dG/dtheta)^k dG/dp`` at the
  first k where it is non-zero), before the feedback loops act.
- :func:`backfire`: pairs whose raw and long-run effects have opposite signs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ecosystem import flows, metrics
from ecosystem.curation import Tilt
from ecosystem.families import Gaussian
from ecosystem.model import EcosystemModel
from ecosystem.rounds import RoundKernel


class AnalysisError(ValueError):
    """An ecosystem that cannot be analysed (e.g. no stable point found)."""


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
        """One round (replace retention) on moment rows ``(N, k)``."""
        k, fam = self.kernel, self.family
        if self.order == "synchronous":
            return fam.fit(k.training_mixture(k.node_moments(rows)), self.initial)
        rows = rows.copy()
        for i in range(self.n_models):
            x = k.node_moments(rows, k.ancestors(i))
            rows[[i]] = fam.fit(k.training_mixture(x, np.array([i])), self.initial[[i]])
        return rows

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
    if isinstance(g.family, Gaussian) or np.all(rows >= 0):
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
    return _numerical_jacobian(g, theta, step)


def _numerical_jacobian(g: RoundMap, theta: np.ndarray, step: float) -> np.ndarray:
    cols = []
    for j in range(theta.size):
        h = _safe_step(g, theta, j, step)
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        cols.append((g(up) - g(down)) / (2 * h))
    return np.array(cols).T


def _safe_step(g: RoundMap, theta: np.ndarray, j: int, step: float) -> float:
    """A difference step that keeps categorical probabilities (and the implied last one) positive."""
    if isinstance(g.family, Gaussian):
        return step * max(1.0, abs(theta[j]))
    rows = g.unpack(theta)
    per_model = rows.shape[1] - 1
    room = min(rows[j // per_model, j % per_model], rows[j // per_model, -1])
    return min(step, 0.5 * room) if room > 0 else step


def affine_jacobian(g: RoundMap) -> np.ndarray | None:
    """Exact ``dG/dtheta`` when the round is affine in the model means, else None.

    Affine: mean-only Gaussians (``covariance="fixed"``), synchronous order, curators that
    tilt linear or quadratic rewards. Each node's mean is then ``A_v theta + b_v``.
    """
    fam, k = g.family, g.kernel
    if not (isinstance(fam, Gaussian) and fam.covariance == "fixed" and g.order == "synchronous"):
        return None
    forms = {}
    for c, cur in k.curator_of.items():
        quad = [r.quadratic_form() for r in cur.rewards]
        if not isinstance(cur.rule, Tilt) or any(f is None for f in quad):
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
    return out


def spectral_radius(jac: np.ndarray) -> float:
    """Largest modulus of the eigenvalues of ``jac``."""
    return float(np.max(np.abs(np.linalg.eigvals(jac)))) if jac.size else 0.0


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Parameter:
    """A scalar scenario parameter: ``kind`` and its ``target``.

    Kinds: ``curation_ratio`` and ``real_share`` (target: a model), ``tau`` and ``K``
    (target: a curator; K is treated as real-valued, which the Luce integral allows),
    ``weight`` (target: an edge ``(u, v)`` into a model or pool; v's other inputs absorb
    the change proportionally).
    """

    kind: str
    target: object

    def label(self) -> str:
        t = self.target
        return f"{self.kind}[{t[0]}->{t[1]}]" if self.kind == "weight" else f"{self.kind}[{t}]"

    def curated_model(self, graph: nx.DiGraph) -> object | None:
        """The model whose curation this parameter sets: the target of a curation ratio, the
        producer judged by a curator (``tau``, ``K``, or the weight of a curated edge)."""
        if self.kind == "curation_ratio":
            return self.target
        node = self.target[0] if self.kind == "weight" else self.target
        if self.kind in ("tau", "K", "weight") and flows.kind(graph, node) == "curator":
            return flows.producer(graph, node)
        return None

    def get(self, graph: nx.DiGraph) -> float:
        if self.kind == "curation_ratio":
            return flows.curation_ratio(graph, self.target)
        if self.kind == "real_share":
            return flows.real_share(graph, self.target)
        if self.kind in ("tau", "K"):
            return float(getattr(graph.nodes[self.target]["curator"].rule, self.kind))
        if self.kind == "weight":
            return float(graph.edges[self.target]["weight"])
        raise AnalysisError(f"unknown parameter kind {self.kind!r}")

    def set(self, graph: nx.DiGraph, value: float) -> nx.DiGraph:
        """A copy of ``graph`` with this parameter set to ``value``."""
        out = graph.copy()
        if self.kind == "curation_ratio":
            flows.set_curation_ratio(out, self.target, value)
        elif self.kind == "real_share":
            flows.set_share(out, self.target, ("source",), value)
        elif self.kind in ("tau", "K"):
            cur = out.nodes[self.target]["curator"]
            rule = dataclasses.replace(cur.rule, **{self.kind: value})
            out.nodes[self.target]["curator"] = dataclasses.replace(cur, rule=rule)
        elif self.kind == "weight":
            u, v = self.target
            others = [(x, v) for x in out.predecessors(v) if x != u]
            rest = sum(out.edges[e]["weight"] for e in others)
            if rest <= 0:
                raise AnalysisError(f"edge '{u}' -> '{v}' is the only input of '{v}'")
            for e in others:
                out.edges[e]["weight"] *= (1.0 - value) / rest
            out.edges[u, v]["weight"] = value
        else:
            raise AnalysisError(f"unknown parameter kind {self.kind!r}")
        return out


def curation_parameters(model: EcosystemModel) -> list[Parameter]:
    """Where curation enters the ecosystem: the curation ratio of every model with curated
    inputs (lambda_j > 0), then the weight of every curated edge into a pool that has other
    inputs (in a shared pool, curated data reaches the models only through the pool)."""
    g = model.graph
    params = [Parameter("curation_ratio", m) for m in model.kernel.models if flows.curation_ratio(g, m) > 0]
    for c in flows.nodes_of(g, "curator"):
        params += [Parameter("weight", (c, p)) for p in g.successors(c)
                   if flows.kind(g, p) == "pool" and g.in_degree(p) > 1]
    return params


def parameter_derivative(model: EcosystemModel, theta: np.ndarray, param: Parameter,
                         step: float = 1e-5) -> np.ndarray:
    """``dG/dp`` ``(D,)`` at ``theta`` by central differences of the round map."""
    value = param.get(model.graph)
    h = step * max(1.0, abs(value))
    lo = max(value - h, 0.0) if param.kind in ("curation_ratio", "real_share", "weight") else value - h
    hi = min(value + h, 1.0) if param.kind in ("curation_ratio", "real_share", "weight") else value + h
    up = RoundMap.of(model, param.set(model.graph, hi))(theta)
    down = RoundMap.of(model, param.set(model.graph, lo))(theta)
    return (up - down) / (hi - lo)


# --------------------------------------------------------------------------- influence


def alignment_gradients(model: EcosystemModel, theta: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """``grad_theta J_i`` for every model i, ``(N, D)`` (J_i: alignment under its users' reward).

    Exact where J is linear or quadratic in the parameters (categorical models; mean-only
    Gaussians with linear/quadratic rewards), central differences otherwise.
    """
    g = RoundMap.of(model)
    n, m = g.n_models, theta.size // g.n_models
    grads = np.zeros((n, theta.size))
    rewards = model._eval_rewards
    rows = g.unpack(theta)
    for j in range(theta.size):
        i = j // m
        if rewards[i] is None:
            continue
        exact = _exact_gradient(model.family, rows[i], rewards[i])
        if exact is not None:
            grads[i, i * m:(i + 1) * m] = exact
            continue
        h = _safe_step(g, theta, j, step)
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        pair = np.stack([g.unpack(up)[i], g.unpack(down)[i]])
        vals = metrics.expected_reward(model.family, pair, rewards[i])
        grads[i, j] = (vals[0] - vals[1]) / (2 * h)
    grads[[r is None for r in rewards]] = np.nan
    return grads


def _exact_gradient(family, row: np.ndarray, reward) -> np.ndarray | None:
    if not isinstance(family, Gaussian):
        table = family.reward_table(reward)
        return table[:-1] - table[-1]
    form = reward.quadratic_form()
    if family.covariance != "fixed" or form is None:
        return None
    g, q = form
    return g - q @ family.mean_cov(row[None])[0][0]


@dataclass
class Influence:
    """Long-run ``influence[i, p] = dJ_i*/dp`` and one-round ``raw[i, p]``, ``(N, P)``."""

    models: list
    parameters: list[Parameter]
    influence: np.ndarray
    raw: np.ndarray
    dtheta: np.ndarray


def influence(model: EcosystemModel, point: StablePoint, params: list[Parameter] | None = None,
              jac: np.ndarray | None = None) -> Influence:
    """Influence of each parameter (default: every curation ratio) on every model's alignment."""
    params = curation_parameters(model) if params is None else params
    jac = jacobian(model, point.theta) if jac is None else jac
    if not params:
        empty = np.zeros((len(model.kernel.models), 0))
        return Influence(list(model.kernel.models), [], empty, empty.copy(), np.zeros((point.theta.size, 0)))
    grads = alignment_gradients(model, point.theta)
    dg = np.array([parameter_derivative(model, point.theta, p) for p in params]).T.reshape(point.theta.size, -1)
    dtheta = np.linalg.solve(np.eye(point.theta.size) - jac, dg)
    n = len(model.kernel.models)
    blocks = np.nan_to_num(grads).reshape(n, n, -1)          # (model i, block of model j, m)
    long_run = np.einsum("ijm,jmp->ip", blocks, dtheta.reshape(n, -1, len(params)))
    raw = np.full_like(long_run, np.nan)
    wave = dg.copy()
    for _ in range(n):                                        # first arrival along the graph
        per_model = wave.reshape(n, -1, len(params))
        arrived = np.isnan(raw) & (np.abs(per_model).max(axis=1) > 1e-14)
        effect = np.einsum("imp,im->ip", per_model, blocks[np.arange(n), np.arange(n)])
        raw[arrived] = effect[arrived]
        wave = jac @ wave
    raw[np.isnan(raw)] = 0.0
    undefined = np.isnan(grads).any(axis=1)
    long_run[undefined], raw[undefined] = np.nan, np.nan
    return Influence(list(model.kernel.models), params, long_run, raw, dtheta)


def influence_by_resolving(model: EcosystemModel, point: StablePoint, param: Parameter,
                           step: float = 1e-5) -> np.ndarray:
    """``dJ_i*/dp`` ``(N,)`` by central differences of re-solved stable points (a check)."""
    value = param.get(model.graph)
    out = []
    for v in (value + step, value - step):
        sp = stable_point(model, graph=param.set(model.graph, v), start=point.rows)
        if not sp.converged:
            raise AnalysisError(f"no stable point at {param.label()} = {v}")
        out.append(metrics.alignment(model.family, sp.rows, model._eval_rewards))
    return (out[0] - out[1]) / (2 * step)


@dataclass
class Backfire:
    """A (parameter, affected model) pair whose raw and long-run effects disagree in sign."""

    parameter: str
    curated: object
    affected: object
    raw: float
    influence: float


def backfire(inf: Influence, graph: nx.DiGraph | None = None, tol: float = 1e-9) -> list[Backfire]:
    """Sign reversals between the one-round effect and the long-run influence, largest first.

    ``curated`` is the parameter's curated model (:meth:`Parameter.curated_model`, with
    ``graph``), else its target."""
    found = []
    for p, param in enumerate(inf.parameters):
        curated = param.curated_model(graph) if graph is not None else None
        for i, name in enumerate(inf.models):
            r, lr = inf.raw[i, p], inf.influence[i, p]
            if np.isfinite(r) and np.isfinite(lr) and abs(r) > tol and abs(lr) > tol and r * lr < 0:
                found.append(Backfire(param.label(), param.target if curated is None else curated, name,
                                      float(r), float(lr)))
    return sorted(found, key=lambda b: -abs(b.influence))


# --------------------------------------------------------------------------- convergence


def observed_rate(model: EcosystemModel, point: StablePoint, max_rounds: int = 2000) -> float | None:
    """Linear rate seen when iterating the round from the model's initial state.

    ``exp`` of the least-squares slope of ``log d_t`` against ``t`` over the rounds with
    ``1e-11 < d_t < 1e-2``, where ``d_t = max |theta_t - theta*|`` (a geometric mean, robust
    to the oscillation of rotating modes); None if fewer than 5 rounds fall in that band.
    """
    g = RoundMap.of(model)
    theta = g.pack(model.initial)
    dist = [float(np.max(np.abs(theta - point.theta)))]
    for _ in range(max_rounds):
        with np.errstate(all="ignore"):
            theta = g(theta)
        d = float(np.max(np.abs(theta - point.theta)))
        if not np.isfinite(d) or d < 1e-12 or d > 1e6:
            break
        dist.append(d)
    d = np.array(dist)
    band = np.flatnonzero((d > 1e-11) & (d < 1e-2))
    if band.size < 5:
        return None
    return float(np.exp(np.polyfit(band, np.log(d[band]), 1)[0]))


@dataclass
class Analysis:
    """Everything :func:`analyze` finds about one ecosystem in population mode."""

    point: StablePoint
    spectral_radius: float
    observed_rate: float | None
    alignment: np.ndarray
    influence: Influence
    backfire: list[Backfire]
    jacobian_method: str
    curated_models: list = dataclasses.field(default_factory=list)
    """Per parameter, the model whose curation it sets (None if none)."""

    def to_dict(self) -> dict:
        """JSON-ready summary (NaN as None)."""
        clean = lambda a: [[None if not np.isfinite(v) else float(v) for v in row] for row in a]  # noqa: E731
        inf = self.influence
        return {
            "models": [str(m) for m in inf.models],
            "converged": bool(self.point.converged),
            "iterations": self.point.iterations,
            "residual": self.point.residual,
            "spectral_radius": self.spectral_radius,
            "stable": self.spectral_radius < 1.0,
            "predicted_rate": self.spectral_radius,
            "observed_rate": self.observed_rate,
            "jacobian": self.jacobian_method,
            "alignment": [None if not np.isfinite(v) else float(v) for v in self.alignment],
            "parameters": [p.label() for p in inf.parameters],
            "curated_models": [None if m is None else str(m) for m in self.curated_models],
            "influence": clean(inf.influence),
            "raw": clean(inf.raw),
            "backfire": [dataclasses.asdict(b) | {"curated": str(b.curated), "affected": str(b.affected)}
                         for b in self.backfire],
        }


def analyze(model: EcosystemModel, params: list[Parameter] | None = None) -> Analysis:
    """Stable point, Jacobian spectral radius, predicted vs observed rate, influence, backfire."""
    point = stable_point(model)
    if not point.converged:
        raise AnalysisError(
            f"no stable point found: residual {point.residual:.3g} after {point.iterations} iterations"
        )
    g = RoundMap.of(model)
    exact = affine_jacobian(g)
    jac = exact if exact is not None else _numerical_jacobian(g, point.theta, 1e-5)
    inf = influence(model, point, params, jac)
    return Analysis(
        point=point, spectral_radius=spectral_radius(jac), observed_rate=observed_rate(model, point),
        alignment=metrics.alignment(model.family, point.rows, model._eval_rewards),
        influence=inf, backfire=backfire(inf, model.graph),
        jacobian_method="exact" if exact is not None else "numerical",
        curated_models=[p.curated_model(model.graph) for p in inf.parameters],
    )
