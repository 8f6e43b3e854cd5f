"""Where to spend curation: ecosystem-level curation policy at the stable point (THEORY.md section 9).

A *policy* sets the curation levers ``x`` ``(P,)`` of an ecosystem (by default each curated
model's curation ratio ``lambda_j``) inside bounds ``lo <= x <= hi`` and a budget
``sum_j c_j x_j <= B``. Its *welfare* is read at the population-mode stable point
``theta*(x)``: the mean, the minimum or a weighted sum of the models' alignments
``J_i*(x)`` (models without users are left out). Gradients are the analysis' own:
``dJ_i*/dx_j`` by the implicit function theorem (:func:`~ecosystem.analysis.influence.influence`).

What absorbs a change of curation ratio is the levers' ``absorb``
(:func:`ecosystem.core.flows.set_curation_ratio`; :func:`curation_levers`): ``"proportional"``
(the default: the model's non-curated inputs, real data and raw synthetic data, scale in
proportion to their weights), ``"real"`` (the real data only) or ``"raw"`` (the raw synthetic
inputs only); the curated inputs keep their split among themselves. Under ``real`` and ``raw`` a
lever's upper bound is at most what the absorbing inputs can give.

Policies (:func:`optimize` computes them all):

- ``optimal``: SLSQP (scipy.optimize) from several starts, bounds and the budget as
  constraints; ``min`` is solved in epigraph form (maximise ``t`` with ``J_i* >= t``);
  the best start is kept, and never one below a baseline.
- ``siloed``: each lever's owner (the model it curates) holds an equal share ``B / P`` of the
  budget and maximises its *own* ``J_j*`` over its own lever given the others; best-response
  iteration (Gauss-Seidel) to an equilibrium, checked by unilateral deviation on a grid.
  Siloed policies are feasible under the same budget, so the price of siloing is >= 0.
- ``uniform``: the budget spread evenly, ``x_j = B / (P c_j)`` (clipped to the bounds).
- ``greedy``: levers ranked by self-influence per unit cost ``(dJ_j*/dx_j) / c_j`` at the
  scenario's own levers; the budget fills the best first (up to ``hi``), none is spent on a
  lever with self-influence <= 0.
- ``none``: every lever at its lower bound.

The *price of siloing* is ``welfare(optimal) - welfare(siloed)``. Every policy is also run
through the engine (:func:`simulate`: population mode, the levers set by the engine's own
events, rounds until the state stops moving) and the simulated welfare reported beside the
predicted one; on request also in sample mode over seeds (:func:`simulate_sample`: finite
samples, common random numbers across policies, a 95% interval of the mean over seeds).
:func:`kkt_residual` checks the optimum's first-order conditions (``min`` in epigraph form).
Where there are no gradients (sample mode, learned models), :mod:`ecosystem.analysis.policy_search`
searches the same levers by simulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from scipy import optimize as sopt

from ecosystem.analysis.influence import Parameter, alignment_gradients, curation_parameters
from ecosystem.analysis.intervals import interval
from ecosystem.analysis.stability import RoundMap, StablePoint, jacobian, stable_point
from ecosystem.core import metrics
from ecosystem.core.model import EcosystemModel
from ecosystem.errors import AnalysisError

OBJECTIVES = ("mean", "min", "weighted")
POLICIES = ("optimal", "siloed", "uniform", "greedy", "none")
EVENT_ACTION = {"curation_ratio": "set_curation_ratio", "real_share": "set_real_share", "tau": "set_tau",
                "K": "set_K"}
"""The engine's event that sets each lever kind (used by :func:`simulate` and the printed events)."""


@dataclass(frozen=True)
class Lever:
    """One policy lever: a scalar :class:`Parameter` with bounds ``[lo, hi]`` and a cost per unit."""

    parameter: Parameter
    lo: float = 0.0
    hi: float = 0.9
    cost: float = 1.0

    def owner(self, graph: nx.DiGraph) -> object:
        """The model whose owner pulls this lever (the model it curates)."""
        owner = self.parameter.curated_model(graph)
        return self.parameter.target if owner is None else owner


def curation_levers(model: EcosystemModel, hi: float = 0.9, costs: dict | None = None,
                    absorb: str = "proportional") -> list[Lever]:
    """The levers of :func:`~ecosystem.analysis.influence.curation_parameters`: the curation ratio
    of every model with curated inputs (a change absorbed by ``absorb``) and, where curated data
    reaches the models through a pool, each curated share of the pool (``weight[users_m -> pool]``;
    the pool's other inputs absorb it); bounds ``[0, hi]`` (and within what the absorbing inputs
    can give: :meth:`Parameter.bounds`), cost ``costs.get(curated model, 1.0)`` per unit."""
    costs = costs or {}
    levers = []
    for p in curation_parameters(model, absorb):
        owner = p.curated_model(model.graph)
        levers.append(Lever(p, 0.0, min(hi, p.bounds(model.graph)[1]), float(costs.get(owner, 1.0))))
    return levers


def make_problem(model: EcosystemModel, budget: float, objective: str = "mean", *, max_ratio: float = 0.9,
                 absorb: str = "proportional", costs: dict | None = None,
                 weights: Sequence[float] | None = None) -> Problem:
    """The :class:`Problem` of ``ecosystem optimize`` (and of a study's ``[policy]``): the
    :func:`curation_levers` of ``model`` in ``[0, max_ratio]`` with ``costs`` (model -> cost per
    unit), the ``budget`` and the ``objective`` (``weights`` ``(N,)`` for ``weighted``)."""
    levers = curation_levers(model, hi=max_ratio, costs=costs, absorb=absorb)
    return Problem(model, levers, budget, objective, None if weights is None else np.asarray(weights, dtype=float))


@dataclass
class Evaluation:
    """The stable point at levers ``x`` ``(P,)``: ``alignment`` ``(N,)`` and, if asked, ``gradient``
    ``(N, P)`` = ``dJ_i*/dx_p``."""

    x: np.ndarray
    point: StablePoint
    alignment: np.ndarray
    gradient: np.ndarray | None = None


@dataclass
class Problem:
    """Levers, budget and welfare of one ecosystem (``model``: its population-mode model).

    ``objective``: ``mean`` | ``min`` | ``weighted``; ``weights`` ``(N,)`` per model (used by
    ``weighted``; models without users get weight 0 whatever is given).
    """

    model: EcosystemModel
    levers: list[Lever]
    budget: float
    objective: str = "mean"
    weights: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise AnalysisError(f"objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        if not self.levers:
            raise AnalysisError("no curation lever to set: no model of this ecosystem has curated inputs")
        if not np.isfinite(self.budget) or self.budget < 0:
            raise AnalysisError(f"the budget must be a finite number >= 0, got {self.budget}")
        for lv in self.levers:
            if not (np.isfinite(lv.lo) and np.isfinite(lv.hi) and lv.lo <= lv.hi) or lv.cost <= 0:
                raise AnalysisError(f"lever {lv.parameter.label()}: needs lo <= hi and a cost > 0")
        if self.lo @ self.costs > self.budget + 1e-12:
            raise AnalysisError(f"the budget {self.budget:g} does not cover the levers' lower bounds "
                                f"(cost {self.lo @ self.costs:g})")
        n = len(self.model.kernel.models)
        self.defined = np.array([r is not None for r in self.model.eval_rewards])
        if not self.defined.any():
            raise AnalysisError("no model has users (a reward), so there is no alignment to optimise")
        w = np.ones(n) if self.weights is None else np.asarray(self.weights, dtype=float)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not (w * self.defined).sum() > 0:
            raise AnalysisError(f"weights must be {n} finite numbers >= 0, not all 0 on models with users")
        self.weights = np.where(self.defined, w, 0.0)
        if self.objective == "mean":
            self.weights = self.defined / self.defined.sum()

    # ------------------------------------------------------------------ levers
    @property
    def lo(self) -> np.ndarray:
        return np.array([lv.lo for lv in self.levers])

    @property
    def hi(self) -> np.ndarray:
        return np.array([lv.hi for lv in self.levers])

    @property
    def costs(self) -> np.ndarray:
        return np.array([lv.cost for lv in self.levers])

    @property
    def models(self) -> list:
        return list(self.model.kernel.models)

    @property
    def absorb(self) -> str:
        """What absorbs a change of the curation-ratio levers (``proportional`` when there are none)."""
        return next((lv.parameter.absorb for lv in self.levers if lv.parameter.kind == "curation_ratio"),
                    "proportional")

    def owners(self) -> list:
        """Per lever, the index of its owner among :attr:`models`."""
        return [self.models.index(lv.owner(self.model.graph)) for lv in self.levers]

    def current(self) -> np.ndarray:
        """The scenario's own lever values ``(P,)``."""
        return np.array([lv.parameter.get(self.model.graph) for lv in self.levers])

    def graph_at(self, x: np.ndarray) -> nx.DiGraph:
        """A copy of the scenario's graph with every lever set (in lever order, from the scenario's values)."""
        g = self.model.graph
        for lv, v in zip(self.levers, x, strict=True):
            g = lv.parameter.set(g, float(v))
        return g

    # ------------------------------------------------------------------ stable point
    def evaluate(self, x: np.ndarray, gradient: bool = False) -> Evaluation:
        """Stable point, alignments and (``gradient``) the influence of each lever, cached by ``x``."""
        x = np.clip(np.asarray(x, dtype=float), self.lo, self.hi)
        key = tuple(np.round(x, 15))
        ev = self._cache.get(key)
        if ev is None:
            g = self.graph_at(x)
            point = stable_point(self.model, graph=g, start=self.model.initial)
            if not point.converged:
                raise AnalysisError(f"no stable point at levers {np.round(x, 6).tolist()} "
                                    f"(residual {point.residual:.3g})")
            ev = Evaluation(x, point, metrics.alignment(self.model.family, point.rows, self.model.eval_rewards))
            self._cache[key] = ev
        if gradient and ev.gradient is None:
            ev.gradient = self._influence(ev)
        return ev

    def _influence(self, ev: Evaluation, step: float = 1e-5) -> np.ndarray:
        """``dJ_i*/dx_p`` ``(N, P)`` by the implicit function theorem (THEORY.md section 4):
        ``d theta*/dx = (I - dG/dtheta)^-1 dG/dx``, ``dG/dx_p`` by central differences of the round
        with the levers set from the scenario's graph (one-sided at the edge of a lever's range,
        :meth:`Parameter.bounds`)."""
        at = _model_at(self.model, self.graph_at(ev.x))
        theta = ev.point.theta
        jac = jacobian(at, theta)
        grads = alignment_gradients(at, theta)
        cols = []
        for p, lv in enumerate(self.levers):
            v = ev.x[p]
            h = step * max(1.0, abs(v))
            low, high = lv.parameter.bounds(self.model.graph)
            lo, hi = max(v - h, low), min(v + h, high)
            up, down = ev.x.copy(), ev.x.copy()
            up[p], down[p] = hi, lo
            cols.append((RoundMap.of(at, self.graph_at(up))(theta) - RoundMap.of(at, self.graph_at(down))(theta))
                        / (hi - lo))
        dtheta = np.linalg.solve(np.eye(theta.size) - jac, np.array(cols).T)
        return grads @ dtheta

    def welfare(self, alignment: np.ndarray) -> float:
        """The objective of alignments ``(N,)``."""
        if self.objective == "min":
            return float(np.min(alignment[self.defined]))
        return float(self.weights[self.defined] @ alignment[self.defined])

    def value(self, x: np.ndarray) -> float:
        return self.welfare(self.evaluate(x).alignment)

    def feasible(self, x: np.ndarray) -> np.ndarray:
        """``x`` clipped to the bounds and scaled toward ``lo`` until it meets the budget."""
        x = np.clip(np.asarray(x, dtype=float), self.lo, self.hi)
        spend, floor = self.costs @ x, self.costs @ self.lo
        if spend > self.budget:
            x = self.lo + (x - self.lo) * (self.budget - floor) / (spend - floor)
        return x


def _model_at(model: EcosystemModel, graph: nx.DiGraph) -> EcosystemModel:
    return EcosystemModel(graph, model.family, mode="population", order=model.order, metrics=("alignment",))


# --------------------------------------------------------------------------- policies


@dataclass
class Policy:
    """One policy: levers ``(P,)``, its cost, predicted and simulated welfare and alignments ``(N,)``."""

    name: str
    levers: np.ndarray
    cost: float
    predicted: float
    alignment: np.ndarray
    simulated: float = float("nan")
    simulated_alignment: np.ndarray | None = None
    rounds: int = 0
    sample: dict | None = None
    """Sample-mode welfare over seeds (:func:`simulate_sample`), if asked."""


@dataclass
class Silo:
    """The siloed equilibrium's levers ``(P,)``, its best-response sweeps, and the largest gain
    any owner finds by a unilateral change of its own lever on a grid (``max_gain`` <= tol: verified)."""

    levers: np.ndarray
    sweeps: int
    converged: bool
    max_gain: float
    caps: np.ndarray


def best_response(problem: Problem, x: np.ndarray, p: int, cap: float, grid: int = 9) -> float:
    """The value of lever ``p`` in ``[lo_p, cap]`` maximising its owner's own stable alignment, the
    others fixed at ``x``: the best point of a ``grid`` then bounded Brent in its neighbourhood."""
    owner = problem.owners()[p]
    lo = problem.lo[p]

    def own(v: float) -> float:
        y = x.copy()
        y[p] = v
        return float(problem.evaluate(y).alignment[owner])

    if cap - lo < 1e-12:
        return lo
    pts = np.linspace(lo, cap, grid)
    vals = np.array([own(v) for v in pts])
    k = int(np.argmax(vals))
    a, b = pts[max(k - 1, 0)], pts[min(k + 1, grid - 1)]
    res = sopt.minimize_scalar(lambda v: -own(v), bounds=(a, b), method="bounded",
                               options={"xatol": 1e-10})
    best, best_val = pts[k], vals[k]
    if -res.fun > best_val:
        best, best_val = float(res.x), -float(res.fun)
    current = own(x[p])
    return float(best) if best_val > current + 1e-13 else float(x[p])


def siloed(problem: Problem, start: np.ndarray | None = None, max_sweeps: int = 60,
           tol: float = 1e-8, check_grid: int = 21) -> Silo:
    """Best-response iteration to the siloed equilibrium (each owner's budget share ``B / P``)."""
    n_p = len(problem.levers)
    caps = uniform(problem)   # each owner's share B / P, clipped to its bounds
    x = np.clip(problem.lo if start is None else np.asarray(start, dtype=float), problem.lo, caps)
    converged, sweeps = False, 0
    users = problem.defined[problem.owners()]
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007
        old = x.copy()
        for p in range(n_p):
            if users[p]:
                x[p] = best_response(problem, x, p, caps[p])
        if np.max(np.abs(x - old)) < tol:
            converged = True
            break
    return Silo(x, sweeps, converged, deviation_gain(problem, x, caps, check_grid), caps)


def deviation_gain(problem: Problem, x: np.ndarray, caps: np.ndarray, grid: int = 21,
                   near: float = 1e-3) -> float:
    """The largest gain in its own stable alignment any owner gets by moving only its own lever to a
    point of a ``grid`` on ``[lo, cap]`` or ``+-near`` around its value (<= 0: no profitable deviation)."""
    gain = -np.inf
    owners = problem.owners()
    for p, owner in enumerate(owners):
        if not problem.defined[owner]:
            continue
        base = problem.evaluate(x).alignment[owner]
        pts = np.concatenate([np.linspace(problem.lo[p], caps[p], grid), [x[p] - near, x[p] + near]])
        for v in np.clip(pts, problem.lo[p], caps[p]):
            y = x.copy()
            y[p] = v
            gain = max(gain, float(problem.evaluate(y).alignment[owner] - base))
    return float(gain)


def uniform(problem: Problem) -> np.ndarray:
    """The budget spread evenly over the levers: ``x_j = B / (P c_j)``, clipped to the bounds."""
    return np.clip(problem.budget / (len(problem.levers) * problem.costs), problem.lo, problem.hi)


def greedy(problem: Problem) -> np.ndarray:
    """Budget to the levers by self-influence per unit cost at the scenario's own levers, best first."""
    at = np.clip(problem.current(), problem.lo, problem.hi)
    grad = problem.evaluate(at, gradient=True).gradient
    owners = problem.owners()
    self_inf = np.array([grad[o, p] if problem.defined[o] else np.nan for p, o in enumerate(owners)])
    x = problem.lo.copy()
    left = problem.budget - problem.costs @ x
    for p in np.argsort(-np.nan_to_num(self_inf / problem.costs, nan=-np.inf), kind="stable"):
        if not self_inf[p] > 0 or left <= 0:
            break
        add = min(problem.hi[p] - x[p], left / problem.costs[p])
        x[p] += add
        left -= add * problem.costs[p]
    return x


def coordinated(problem: Problem, starts: list[np.ndarray], maxiter: int = 200) -> np.ndarray:
    """SLSQP from each of ``starts`` (made feasible); the best feasible end point."""
    best, best_val = None, -np.inf
    c, budget = problem.costs, problem.budget
    defined = np.flatnonzero(problem.defined)
    n_p = len(problem.levers)
    for s in starts:
        s = problem.feasible(s)
        if problem.objective == "min":
            z0 = np.append(s, problem.value(s))
            bounds = [*zip(problem.lo, problem.hi, strict=True), (None, None)]
            cons = [{"type": "ineq", "fun": lambda z: budget - c @ z[:n_p], "jac": lambda z: np.append(-c, 0.0)},
                    {"type": "ineq",
                     "fun": lambda z: problem.evaluate(z[:n_p]).alignment[defined] - z[-1],
                     "jac": lambda z: np.hstack([problem.evaluate(z[:n_p], gradient=True).gradient[defined],
                                                 -np.ones((defined.size, 1))])}]
            res = sopt.minimize(lambda z: -z[-1], z0, jac=lambda z: np.append(np.zeros(n_p), -1.0),
                                method="SLSQP", bounds=bounds, constraints=cons,
                                options={"ftol": 1e-14, "maxiter": maxiter})
            x = res.x[:n_p]
        else:
            w = problem.weights

            def f(x, w=w):
                return -float(w @ np.nan_to_num(problem.evaluate(x).alignment))

            def jac(x, w=w):
                return -(w @ np.nan_to_num(problem.evaluate(x, gradient=True).gradient))

            res = sopt.minimize(f, s, jac=jac, method="SLSQP", bounds=list(zip(problem.lo, problem.hi, strict=True)),
                                constraints=[{"type": "ineq", "fun": lambda x: budget - c @ x,
                                              "jac": lambda x: -c}],
                                options={"ftol": 1e-14, "maxiter": maxiter})
            x = res.x
        x = problem.feasible(x)
        val = problem.value(x)
        if val > best_val:
            best, best_val = x, val
    return best


def kkt_residual(problem: Problem, x: np.ndarray, tol: float = 1e-7) -> float:
    """Largest violation of the KKT conditions at ``x``, in welfare units per lever unit, for the
    best multipliers (a small linear programme). With ``g`` the welfare's gradient ``(P,)`` (mean,
    weighted) or, for ``min`` in its epigraph form (maximise ``t`` with ``J_i* >= t``),
    ``g = sum_i nu_i grad J_i*`` over the models whose alignment is the minimum (within ``tol``),
    ``nu >= 0`` summing to 1: ``r = g - mu c`` is 0 on free levers, >= 0 at ``hi``, <= 0 at ``lo``,
    with a budget multiplier ``mu >= 0`` (0 when the budget is slack)."""
    ev = problem.evaluate(x, gradient=True)
    grad = np.nan_to_num(ev.gradient)
    if problem.objective == "min":
        align = ev.alignment
        worst = np.min(align[problem.defined])
        rows = grad[problem.defined & (align <= worst + tol)]
    else:
        rows = (problem.weights @ grad)[None, :]
    c = problem.costs
    at_lo, at_hi = x <= problem.lo + tol, x >= problem.hi - tol
    free = ~(at_lo | at_hi)
    tight = problem.budget - c @ x <= tol
    k, n_p = rows.shape
    # variables: nu (k), mu, s; r_j = rows[:, j] @ nu - mu c_j; minimise s
    r = np.hstack([rows.T, -c[:, None], np.zeros((n_p, 1))])
    s_col = np.zeros(k + 2)
    s_col[-1] = 1.0
    upper = [r[j] - s_col for j in range(n_p) if free[j] or at_lo[j]]      # r_j <= s
    lower = [-r[j] - s_col for j in range(n_p) if free[j] or at_hi[j]]     # r_j >= -s
    a_ub = np.array(upper + lower) if upper or lower else None
    res = sopt.linprog(s_col, A_ub=a_ub, b_ub=None if a_ub is None else np.zeros(len(a_ub)),
                       A_eq=np.append(np.ones(k), [0.0, 0.0])[None, :], b_eq=[1.0],
                       bounds=[(0, None)] * k + [(0, None if tight else 0), (0, None)], method="highs")
    if not res.success:
        raise AnalysisError(f"the KKT multipliers could not be computed: {res.message}")
    return float(res.fun)


def simulate(problem: Problem, x: np.ndarray, tol: float = 1e-14, max_rounds: int = 100_000
             ) -> tuple[np.ndarray, int]:
    """Run the policy through the engine in population mode: a fresh model of the scenario's graph,
    the levers set by the engine's events (``set_curation_ratio``, ...), rounds until no moment moves
    by more than ``tol``. Returns the alignments ``(N,)`` the engine measures and the rounds run."""
    base = problem.model
    sim = EcosystemModel(base.graph.copy(), base.family, mode="population", order=base.order,
                         metrics=("alignment",))
    _set_levers(sim, problem.levers, x)
    for rounds in range(1, max_rounds + 1):
        old = sim.state.copy()
        sim.step()
        if float(np.max(np.abs(sim.state - old))) <= tol:
            return np.asarray(sim.measures["alignment"], dtype=float), rounds
    raise AnalysisError(f"the engine did not settle within {max_rounds} rounds at levers {np.round(x, 6).tolist()}")


def sample_runs(problem: Problem, x: np.ndarray, seeds: Sequence[int], rounds: int = 200, burn_in: int = 100
                ) -> tuple[np.ndarray, np.ndarray]:
    """Run the policy ``x`` through the engine in sample mode (finite samples: each model's
    ``sample_size``; learned models too), once per seed of ``seeds``. Returns per seed the welfare
    of the measured alignments averaged over rounds ``burn_in + 1 .. rounds`` ``(S,)`` and each
    model's alignment averaged over the same rounds ``(S, N)`` (NaN for a model without users)."""
    if len(seeds) < 1 or not 0 <= burn_in < rounds:
        raise AnalysisError(f"sample runs need seeds >= 1 and 0 <= burn_in < rounds, got {len(seeds)}, "
                            f"{burn_in}, {rounds}")
    base = problem.model
    welfare, align = [], []
    for seed in seeds:
        sim = EcosystemModel(base.graph.copy(), base.family, mode="sample", order=base.order, rng=int(seed),
                             metrics=("alignment",))
        _set_levers(sim, problem.levers, x)
        per_round = []
        for t in range(1, rounds + 1):
            sim.step()
            if t > burn_in:
                per_round.append(np.asarray(sim.measures["alignment"], dtype=float))
        a = np.array(per_round)
        welfare.append(float(np.mean([problem.welfare(row) for row in a])))
        align.append(a.mean(axis=0))
    return np.array(welfare), np.array(align)


def simulate_sample(problem: Problem, x: np.ndarray, seeds: int = 5, rounds: int = 200, burn_in: int = 100
                    ) -> dict:
    """:func:`sample_runs` over seeds ``0 .. seeds - 1`` (the same seeds for every policy: common
    random numbers); returns ``{"mean", "low", "high", "seeds", "rounds", "burn_in"}`` with a
    Student-t 95% interval of the mean over seeds (:func:`~ecosystem.analysis.intervals.interval`)."""
    welfare, _ = sample_runs(problem, x, range(seeds), rounds, burn_in)
    mean, low, high = interval(welfare)
    return {"mean": mean, "low": low, "high": high, "seeds": seeds, "rounds": rounds, "burn_in": burn_in}


def _set_levers(sim: EcosystemModel, levers: list[Lever], x: np.ndarray) -> None:
    """Set each lever of a fresh model through the engine's own events (before round 1); a
    non-integer K (which the ``set_K`` event refuses) is set on the graph (:meth:`Parameter.set`)."""
    for lv, v in zip(levers, x, strict=True):
        kind, target = lv.parameter.kind, lv.parameter.target
        if kind == "K" and not float(v).is_integer():
            sim.graph.nodes[target]["curator"] = lv.parameter.set(sim.graph, float(v)).nodes[target]["curator"]
            sim.recompile()
        elif kind == "weight":
            sim.apply("set_flow", f"{target[0]}->{target[1]}", float(v))
        else:
            sim.apply(EVENT_ACTION[kind], target, _event_value(lv.parameter, v))


def _event_value(parameter: Parameter, v: float) -> object:
    """The value of the event that sets ``parameter`` to ``v``: an integer K, a curation ratio with
    its ``absorb`` when that is not ``proportional`` (``{ratio, absorb}``), else the number."""
    if parameter.kind == "K":
        return int(v)
    if parameter.kind == "curation_ratio" and parameter.absorb != "proportional":
        return {"ratio": float(v), "absorb": parameter.absorb}
    return float(v)


# --------------------------------------------------------------------------- the report


@dataclass
class PolicyReport:
    """Every policy of one problem, the siloed equilibrium's check and the price of siloing.

    ``method``: ``gradient`` (:func:`optimize`: welfare predicted at the stable point) or
    ``derivative-free`` (:func:`ecosystem.analysis.policy_search.search`: welfare estimated in
    sample mode, each policy's ``sample``; ``price_interval``: a 95% interval of the price of
    siloing from the paired differences over the common seeds)."""

    problem: Problem
    policies: dict[str, Policy]
    silo: Silo
    kkt: float | None
    method: str = "gradient"
    price_interval: tuple[float, float] | None = None

    @property
    def price_of_siloing(self) -> float:
        """Welfare of ``optimal`` minus ``siloed`` (predicted; sample means for ``derivative-free``)."""
        if self.method == "gradient":
            return self.policies["optimal"].predicted - self.policies["siloed"].predicted
        return self.policies["optimal"].sample["mean"] - self.policies["siloed"].sample["mean"]

    def curate_less(self, tol: float = 1e-6) -> list:
        """Models whose lever the optimum sets lower than their owner does alone (siloed)."""
        opt, sil = self.policies["optimal"].levers, self.policies["siloed"].levers
        return [str(lv.owner(self.problem.model.graph)) for lv, a, b in zip(self.problem.levers, opt, sil, strict=True)
                if a < b - tol]

    def lever_names(self) -> list[tuple[str, str]]:
        """Per lever, ``(model, name)``: the keys of ``levers`` in :meth:`to_dict`. ``model`` is the
        model the lever curates; ``name`` is ``curation_ratio`` for its curation ratio, else the
        parameter's label (``weight[users_m0->pool]``, ``K[users_A]``)."""
        graph = self.problem.model.graph
        return [(str(lv.owner(graph)), "curation_ratio" if lv.parameter.kind == "curation_ratio"
                 else lv.parameter.label()) for lv in self.problem.levers]

    def to_dict(self) -> dict:
        """JSON-ready: ``method``, ``policies`` (each: ``levers``, ``cost``, ``objective`` {predicted,
        simulated, and ``sample`` when estimated in sample mode}, ``alignment`` at the simulated stable
        point, or the sample-mode estimate), ``budget``, ``objective_kind``, ``absorb``,
        ``price_of_siloing`` (and ``price_of_siloing_interval``, derivative-free), ``curate_less``,
        ``siloed_check``, ``kkt_residual``."""
        models = [str(m) for m in self.problem.models]
        defined = self.problem.defined
        out = {}
        for name, pol in self.policies.items():
            levers: dict = {}
            for (target, kind), v in zip(self.lever_names(), pol.levers, strict=True):
                levers.setdefault(target, {})[kind] = float(v)
            align = pol.simulated_alignment if pol.simulated_alignment is not None else pol.alignment
            out[name] = {
                "levers": levers, "cost": pol.cost,
                "objective": {"predicted": pol.predicted, "simulated": pol.simulated}
                | ({"sample": pol.sample} if pol.sample is not None else {}),
                "alignment": {m: float(a) for m, a, d in zip(models, align, defined, strict=True) if d},
                "predicted_alignment": {m: float(a) for m, a, d in zip(models, pol.alignment, defined, strict=True)
                                        if d},
                "rounds": pol.rounds,
            }
        return {
            "method": self.method, "policies": out, "budget": self.problem.budget,
            "objective_kind": self.problem.objective,
            "absorb": self.problem.absorb, "price_of_siloing": self.price_of_siloing, "curate_less": self.curate_less(),
            "weights": {m: float(w) for m, w, d in zip(models, self.problem.weights, defined, strict=True) if d},
            "costs": {lv.parameter.label(): float(lv.cost) for lv in self.problem.levers},
            "bounds": {lv.parameter.label(): [lv.lo, lv.hi] for lv in self.problem.levers},
            "siloed_check": {"sweeps": self.silo.sweeps, "converged": self.silo.converged,
                             "max_unilateral_gain": self.silo.max_gain,
                             "lever_caps": {lv.parameter.label(): float(c)
                                            for lv, c in zip(self.problem.levers, self.silo.caps, strict=True)}},
            "kkt_residual": self.kkt,
        } | ({"price_of_siloing_interval": list(self.price_interval)} if self.price_interval else {})


def optimize(problem: Problem, *, simulate_policies: bool = True, n_random: int = 3, seed: int = 0,
             tie: float = 1e-10, sample_seeds: int = 0, sample_rounds: int = 200,
             sample_burn_in: int = 100) -> PolicyReport:
    """All five policies of ``problem`` (see the module), each run through the engine unless not
    ``simulate_policies``; ``n_random`` extra random feasible starts for the optimizer (seeded).
    When the siloed equilibrium's welfare is within ``tie`` of the best found, it is the optimum
    (the price of siloing is then 0 and no model is asked to curate less). ``sample_seeds > 0``
    also runs every policy in sample mode over that many seeds (:func:`simulate_sample`)."""
    found = {"none": problem.lo.copy(), "uniform": uniform(problem), "greedy": greedy(problem)}
    silo = siloed(problem, start=found["uniform"])
    found["siloed"] = silo.levers
    rng = np.random.default_rng(seed)
    starts = [found["uniform"], found["siloed"], found["greedy"], problem.current(), found["none"]]
    starts += [problem.lo + rng.random(len(problem.levers)) * (problem.hi - problem.lo) for _ in range(n_random)]
    best = coordinated(problem, starts)
    for name in ("uniform", "greedy", "none"):                # never below a baseline
        if problem.value(found[name]) > problem.value(best):
            best = found[name].copy()
    if problem.value(silo.levers) >= problem.value(best) - tie:  # a tie: siloed is already optimal
        best = silo.levers.copy()
    found["optimal"] = best
    policies = {}
    for name in POLICIES:
        x = found[name]
        ev = problem.evaluate(x)
        pol = Policy(name, ev.x.copy(), float(problem.costs @ ev.x), problem.welfare(ev.alignment), ev.alignment)
        if simulate_policies:
            pol.simulated_alignment, pol.rounds = simulate(problem, ev.x)
            pol.simulated = problem.welfare(pol.simulated_alignment)
        if sample_seeds > 0:
            pol.sample = simulate_sample(problem, ev.x, sample_seeds, sample_rounds, sample_burn_in)
        policies[name] = pol
    kkt = kkt_residual(problem, policies["optimal"].levers)
    return PolicyReport(problem, policies, silo, kkt)


def event_lines(report: PolicyReport, policy: str = "optimal", levers: Sequence[int] | None = None) -> list[str]:
    """``[[events]]`` TOML tables (round 1) that set ``policy``'s levers (those of index ``levers``,
    default all) in a scenario file, so that ``ecosystem run`` reproduces it: for the levers no
    ``KEY=VALUE`` override sets (:mod:`ecosystem.formats.policy_overrides`)."""
    lines = []
    values = report.policies[policy].levers
    for p in range(len(values)) if levers is None else levers:
        lv, v = report.problem.levers[p], values[p]
        kind, target = lv.parameter.kind, lv.parameter.target
        action = "set_flow" if kind == "weight" else EVENT_ACTION[kind]
        name = f"{target[0]}->{target[1]}" if kind == "weight" else str(target)
        if kind == "K" and not float(v).is_integer():
            lines += [f"# K of {name} = {float(v)!r}: not an integer, which set_K does not accept", ""]
            continue
        value = _event_value(lv.parameter, v)
        text = (f'{{ ratio = {value["ratio"]!r}, absorb = "{value["absorb"]}" }}' if isinstance(value, dict)
                else repr(value))
        lines += ["[[events]]", "round = 1", f'action = "{action}"', f'target = "{name}"', f"value = {text}", ""]
    return lines
