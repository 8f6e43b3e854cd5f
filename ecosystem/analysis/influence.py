"""Influence of curation at the stable point, backfire and the full analysis (THEORY.md section 4)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import networkx as nx
import numpy as np

from ecosystem.analysis.stability import (
    RoundMap,
    StablePoint,
    affine_jacobian,
    difference_step,
    inert,
    jacobian,
    spectral_radius,
    stable_point,
)
from ecosystem.core import flows, metrics
from ecosystem.core.model import EcosystemModel
from ecosystem.errors import AnalysisError

# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Parameter:
    """A scalar scenario parameter: ``kind`` and its ``target``.

    Kinds: ``curation_ratio`` and ``real_share`` (target: a model), ``tau`` and ``K``
    (target: a curator; K is treated as real-valued, which the Luce integral allows),
    ``weight`` (target: an edge ``(u, v)`` into a model or pool; v's other inputs absorb
    the change proportionally). ``absorb``: what takes up a change of a curation ratio
    (:data:`ecosystem.core.flows.ABSORB`: ``proportional``, ``real`` or ``raw``).
    """

    kind: str
    target: object
    absorb: str = "proportional"

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

    def bounds(self, graph: nx.DiGraph) -> tuple[float, float]:
        """The values this parameter can take (a share: within [0, 1] and, for a curation ratio,
        what its ``absorb`` inputs can give; otherwise unbounded)."""
        if self.kind == "curation_ratio":
            return flows.curation_range(graph, self.target, self.absorb)
        return (0.0, 1.0) if self.kind in ("real_share", "weight") else (-np.inf, np.inf)

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
            flows.set_curation_ratio(out, self.target, value, self.absorb)
        elif self.kind == "real_share":
            flows.set_share(out, self.target, ("source",), value)
        elif self.kind in ("tau", "K"):
            out.nodes[self.target]["curator"] = out.nodes[self.target]["curator"].with_rule(**{self.kind: value})
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


def curation_parameters(model: EcosystemModel, absorb: str = "proportional") -> list[Parameter]:
    """Where curation enters the ecosystem: the curation ratio of every model with curated
    inputs (lambda_j > 0; a change of it absorbed by ``absorb``), then the weight of every curated
    edge into a pool that has other inputs (in a shared pool, curated data reaches the models only
    through the pool)."""
    g = model.graph
    params = [Parameter("curation_ratio", m, flows.check_absorb(absorb)) for m in model.kernel.models
              if flows.curation_ratio(g, m) > 0]
    for c in flows.nodes_of(g, "curator"):
        params += [Parameter("weight", (c, p)) for p in g.successors(c)
                   if flows.kind(g, p) == "pool" and g.in_degree(p) > 1]
    return params


def parameter_derivative(model: EcosystemModel, theta: np.ndarray, param: Parameter,
                         step: float = 1e-5) -> np.ndarray:
    """``dG/dp`` ``(D,)`` at ``theta`` by central differences of the round map."""
    value = param.get(model.graph)
    h = step * max(1.0, abs(value))
    low, high = param.bounds(model.graph)
    lo, hi = max(value - h, low), min(value + h, high)
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
    rewards = model.eval_rewards
    rows = g.unpack(theta)
    for j in range(theta.size):
        i = j // m
        if rewards[i] is None:
            continue
        exact = model.family.reward_gradient(rows[i], rewards[i])
        if exact is not None:
            grads[i, i * m:(i + 1) * m] = exact
            continue
        h = difference_step(g, theta, j, step)
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        pair = np.stack([g.unpack(up)[i], g.unpack(down)[i]])
        vals = model.family.expected_reward(pair, rewards[i])
        grads[i, j] = (vals[0] - vals[1]) / (2 * h)
    grads[[r is None for r in rewards]] = np.nan
    return grads


@dataclass
class Influence:
    """Long-run ``influence[i, p] = dJ_i*/dp`` and the first-arrival effect ``raw[i, p]``, ``(N, P)``:
    ``grad J_i^T (dG/dtheta)^k dG/dp`` restricted to model i, at the first round ``k + 1`` in which the
    change reaches i (``k = 0`` for the model the parameter acts on: its one-round effect)."""

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
    live = ~(inert(jac) & np.all(np.abs(dg) <= 1e-12, axis=1))   # unvisited inputs do not move
    dtheta = np.zeros_like(dg)
    dtheta[live] = np.linalg.solve(np.eye(live.sum()) - jac[np.ix_(live, live)], dg[live])
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
    """``dJ_i*/dp`` ``(N,)`` by central differences of re-solved stable points (a check), the step
    shrunk to stay in the parameter's range (:meth:`Parameter.bounds`; one-sided at its edge)."""
    value = param.get(model.graph)
    low, high = param.bounds(model.graph)
    h = min(step, value - low, high - value)
    ends = (value + h, value - h) if h > 0 else (min(value + step, high), max(value - step, low))
    out = []
    for v in ends:
        sp = stable_point(model, graph=param.set(model.graph, v), start=point.rows)
        if not sp.converged:
            raise AnalysisError(f"no stable point at {param.label()} = {v}")
        out.append(metrics.alignment(model.family, sp.rows, model.eval_rewards))
    return (out[0] - out[1]) / (ends[0] - ends[1])


@dataclass
class Backfire:
    """A (parameter, affected model) pair of :func:`backfire` or :func:`negative_influence`:
    ``scope`` is ``self`` when the affected model is the curated one, else ``cross``."""

    parameter: str
    curated: object
    affected: object
    raw: float
    influence: float
    scope: str = "self"


def _pairs(inf: Influence, graph: nx.DiGraph | None, keep) -> list[Backfire]:
    """The (parameter, model) pairs whose finite first-arrival and long-run effects satisfy
    ``keep(raw, influence)``, largest long-run effect first."""
    found = []
    for p, param in enumerate(inf.parameters):
        curated = param.curated_model(graph) if graph is not None else None
        curated = param.target if curated is None else curated
        for i, name in enumerate(inf.models):
            r, lr = inf.raw[i, p], inf.influence[i, p]
            if np.isfinite(r) and np.isfinite(lr) and keep(r, lr):
                found.append(Backfire(param.label(), curated, name, float(r), float(lr),
                                      "self" if name == curated else "cross"))
    return sorted(found, key=lambda b: -abs(b.influence))


def negative_influence(inf: Influence, graph: nx.DiGraph | None = None, tol: float = 1e-9) -> list[Backfire]:
    """*Negative influence* (THEORY.md section 4, "Words"): ``dJ_i*/dp < 0``, more of the parameter
    lowers model i's long-run alignment, whatever its first-arrival effect. ``curated`` is the
    parameter's curated model (:meth:`Parameter.curated_model`, with ``graph``), else its target."""
    return _pairs(inf, graph, lambda r, lr: lr < -tol)


def backfire(inf: Influence, graph: nx.DiGraph | None = None, tol: float = 1e-9) -> list[Backfire]:
    """*Backfire* in the paper's sense: the first-arrival effect on model i is aligned with i's
    reward (``raw > 0``) yet the long-run influence is negative (``dJ_i*/dp < 0``); self when i is
    the curated model, cross otherwise. A negative influence whose first-arrival effect is already
    negative is no backfire."""
    return _pairs(inf, graph, lambda r, lr: r > tol and lr < -tol)


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
    negative_influence: list[Backfire] = dataclasses.field(default_factory=list)
    absorb: str = "proportional"
    """What absorbs a change of the curation-ratio parameters (:data:`ecosystem.core.flows.ABSORB`)."""

    def to_dict(self) -> dict:
        """JSON-ready summary (NaN as None): ``influence`` (long run) and ``raw`` (the first-arrival
        effect, :class:`Influence`) per model and parameter, ``negative_influence`` and ``backfire``
        (lists of :class:`Backfire`), ``absorb``."""
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
            "absorb": self.absorb,
            "negative_influence": [_entry(b) for b in self.negative_influence],
            "backfire": [_entry(b) for b in self.backfire],
        }


def _entry(b: Backfire) -> dict:
    return dataclasses.asdict(b) | {"curated": str(b.curated), "affected": str(b.affected)}


def analyze(model: EcosystemModel, params: list[Parameter] | None = None,
            absorb: str = "proportional") -> Analysis:
    """Stable point, Jacobian spectral radius, predicted vs observed rate, influence, negative
    influence and backfire. ``params`` default to :func:`curation_parameters` with ``absorb``; given,
    their curation ratios must all use one convention (reported as ``absorb``)."""
    params = curation_parameters(model, absorb) if params is None else params
    conventions = {p.absorb for p in params if p.kind == "curation_ratio"}
    if len(conventions) > 1:
        raise AnalysisError(f"the curation-ratio parameters mix absorb conventions: {', '.join(sorted(conventions))}")
    point = stable_point(model)
    if not point.converged:
        raise AnalysisError(
            f"no stable point found: residual {point.residual:.3g} after {point.iterations} iterations"
        )
    g = RoundMap.of(model)
    exact = affine_jacobian(g)
    jac = jacobian(model, point.theta)
    inf = influence(model, point, params, jac)
    return Analysis(
        point=point, spectral_radius=spectral_radius(jac), observed_rate=observed_rate(model, point),
        alignment=metrics.alignment(model.family, point.rows, model.eval_rewards),
        influence=inf, backfire=backfire(inf, model.graph),
        jacobian_method="exact" if exact is not None else "numerical",
        curated_models=[p.curated_model(model.graph) for p in inf.parameters],
        negative_influence=negative_influence(inf, model.graph),
        absorb=conventions.pop() if conventions else absorb,
    )
