"""Where to spend curation without gradients: the policy levers of :mod:`ecosystem.analysis.policy`
searched by simulation in sample mode (finite samples; learned models too).

The welfare of levers ``x`` ``(P,)`` is *estimated*: the policy runs through the engine in sample
mode once per seed (:func:`~ecosystem.analysis.policy.sample_runs`), the welfare of the measured
alignments averaged over rounds ``burn_in + 1 .. rounds`` and then over the seeds. Every candidate
policy runs on the same seeds (common random numbers), so the estimate is a deterministic function
of ``x`` and differences between policies are paired: the search compares policies, not noise.

- ``optimal``: COBYQA (scipy.optimize; Powell's derivative-free trust-region method with quadratic
  models, as maintained by Ragonneau and Zhang) with the levers' bounds and the budget
  ``sum_j c_j x_j <= B`` as constraints, from the best of the baselines and of :func:`concentrated`
  (each lever given the budget first), at most ``max_evals`` estimates. COBYQA needs no
  derivative, takes the linear budget as it is (no reparametrisation) and never evaluates outside
  the bounds, so every estimate is of a policy that exists (COBYLA steps outside them, where a
  projected estimate misleads its linear models; it stalled on the test instances). The best
  estimated point is kept, baselines included: never below ``none``, ``uniform`` or ``siloed`` on
  these seeds (a point over the budget, which COBYQA may try, is estimated at
  :meth:`~ecosystem.analysis.policy.Problem.feasible` of it).
- ``siloed``: each owner with an equal share ``B / P`` of the budget; best-response iteration in
  which each owner picks, on a ``grid`` over ``[lo, cap]``, the value of its own lever that
  maximises the estimate of its *own* alignment, the others fixed; ``max_gain`` is the largest gain
  any owner still finds on that grid.
- ``uniform``, ``none``: as :mod:`~ecosystem.analysis.policy` (``greedy`` needs gradients).

Each policy is reported with the mean over seeds and a Student-t 95% interval; the price of siloing
with the interval of the paired differences. The intervals are over the seeds the search chose
on, so the optimum's estimate is slightly optimistic (it is the best of the points tried); rerun
its levers with other seeds for an unbiased one.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize as sopt

from ecosystem.analysis.intervals import interval
from ecosystem.analysis.policy import Policy, PolicyReport, Problem, Silo, sample_runs, uniform
from ecosystem.errors import AnalysisError

POLICIES = ("optimal", "siloed", "uniform", "none")


class Estimator:
    """The sample-mode estimate of a policy on fixed seeds (common random numbers), cached by levers."""

    def __init__(self, problem: Problem, seeds: int = 3, rounds: int = 60, burn_in: int = 30) -> None:
        self.problem, self.seeds, self.rounds, self.burn_in = problem, list(range(seeds)), rounds, burn_in
        self.cache: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        """Levers rounded to 12 digits -> (the levers run, welfare ``(S,)``, alignment ``(S, N)``)."""

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per seed, the welfare ``(S,)`` and each model's alignment ``(S, N)`` of the levers
        :meth:`Problem.feasible` makes of ``x``."""
        x = self.problem.feasible(x)
        key = tuple(np.round(x, 12))
        if key not in self.cache:
            self.cache[key] = (x, *sample_runs(self.problem, x, self.seeds, self.rounds, self.burn_in))
        return self.cache[key][1:]

    def value(self, x: np.ndarray) -> float:
        """The welfare estimate: the mean over seeds."""
        return float(self(x)[0].mean())

    def own(self, x: np.ndarray, model: int) -> float:
        """Model ``model``'s alignment estimate: the mean over seeds."""
        return float(self(x)[1][:, model].mean())

    def best(self) -> np.ndarray:
        """The estimated point of highest welfare so far (the first of equals)."""
        return max(self.cache.values(), key=lambda entry: entry[1].mean())[0].copy()

    def summary(self, x: np.ndarray) -> dict:
        """``{"mean", "low", "high", "seeds", "rounds", "burn_in"}`` of the welfare at ``x``."""
        mean, low, high = interval(self(x)[0])
        return {"mean": mean, "low": low, "high": high, "seeds": len(self.seeds), "rounds": self.rounds,
                "burn_in": self.burn_in}


def siloed(problem: Problem, est: Estimator, start: np.ndarray, grid: int = 5, max_sweeps: int = 4) -> Silo:
    """Best-response iteration on a ``grid`` of each owner's range ``[lo, cap]`` (``cap``: its share
    ``B / P`` of the budget), each owner maximising the estimate of its own alignment."""
    caps = uniform(problem)   # each owner's share B / P, clipped to its bounds
    owners = problem.owners()
    x = np.clip(np.asarray(start, dtype=float), problem.lo, caps)
    converged, sweeps = False, 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007
        old = x.copy()
        for p, owner in enumerate(owners):
            if problem.defined[owner]:
                x[p] = _best_on_grid(est, x, p, owner, np.linspace(problem.lo[p], caps[p], grid))
        if np.array_equal(x, old):
            converged = True
            break
    gain = max((max(est.own(_with(x, p, v), o) for v in np.linspace(problem.lo[p], caps[p], grid))
                - est.own(x, o) for p, o in enumerate(owners) if problem.defined[o]), default=0.0)
    return Silo(x, sweeps, converged, float(gain), caps)


def _with(x: np.ndarray, p: int, v: float) -> np.ndarray:
    y = x.copy()
    y[p] = v
    return y


def _best_on_grid(est: Estimator, x: np.ndarray, p: int, owner: int, points: np.ndarray) -> float:
    """The point of ``points`` where ``owner``'s estimate is highest (the current value unless beaten)."""
    best, best_val = float(x[p]), est.own(x, owner)
    for v in points:
        val = est.own(_with(x, p, v), owner)
        if val > best_val + 1e-12:
            best, best_val = float(v), val
    return best


def concentrated(problem: Problem) -> list[np.ndarray]:
    """Per lever, the budget spent on it first (up to its upper bound), the rest spread evenly over
    the others (within theirs): ``P`` feasible corners of the budget, starts that reach an optimum
    concentrated on one model, where welfare rises faster than linearly, from which a local search
    from an even split does not climb."""
    out = []
    for p in range(len(problem.levers)):
        x = problem.lo.copy()
        x[p] = min(problem.hi[p], problem.lo[p] + (problem.budget - problem.costs @ problem.lo) / problem.costs[p])
        others = np.arange(len(x)) != p
        if others.any():
            left = problem.budget - problem.costs @ x
            x[others] = np.minimum(problem.hi[others], x[others] + left / (others.sum() * problem.costs[others]))
        out.append(x)
    return out


def search(problem: Problem, *, seeds: int = 3, rounds: int = 60, burn_in: int = 30, max_evals: int = 40,
           grid: int = 5) -> PolicyReport:
    """The derivative-free policies of ``problem`` (see the module): ``seeds`` common seeds
    ``0 .. seeds - 1``, ``rounds`` sample rounds per run of which the first ``burn_in`` are left out,
    at most ``max_evals`` estimates for COBYQA, a ``grid`` of points per owner for the siloed
    policy. The same arguments give the same report."""
    if max_evals < 1 or grid < 2:
        raise AnalysisError(f"max_evals must be >= 1 and grid >= 2, got {max_evals}, {grid}")
    est = Estimator(problem, seeds, rounds, burn_in)
    found = {"none": problem.lo.copy(), "uniform": uniform(problem)}
    silo = siloed(problem, est, found["uniform"], grid)
    found["siloed"] = silo.levers
    starts = [found["uniform"], found["siloed"], found["none"], *concentrated(problem)]
    start = max(starts, key=est.value)
    span = float(np.max(problem.hi - problem.lo))
    if span > 0:
        sopt.minimize(lambda z: -est.value(z), start, method="COBYQA",
                      bounds=sopt.Bounds(problem.lo, problem.hi),
                      constraints=[sopt.LinearConstraint(problem.costs[None, :], -np.inf, problem.budget)],
                      options={"initial_tr_radius": 0.25 * span, "final_tr_radius": 1e-3 * span,
                               "maxfev": max_evals})
    found["optimal"] = est.best()
    policies = {}
    for name in POLICIES:
        x = problem.feasible(found[name])
        _, align = est(x)
        policies[name] = Policy(name, x, float(problem.costs @ x), float("nan"), align.mean(axis=0),
                                sample=est.summary(x))
    _, low, high = interval(est(found["optimal"])[0] - est(found["siloed"])[0])
    return PolicyReport(problem, policies, silo, None, method="derivative-free", price_interval=(low, high))
