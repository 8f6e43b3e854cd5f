"""Where to spend curation (ecosystem.analysis.policy, ``ecosystem optimize``): the optimum against
an exhaustive grid, KKT, the siloed equilibrium, isolated models, predicted vs simulated, the CLI."""

from __future__ import annotations

import json
import re
import shlex

import networkx as nx
import numpy as np
import pytest
from conftest import COORDS, N_OUT, RING, categorical

from ecosystem.analysis import intervals, policy

TINY = """
name = "tiny-conflict"
steps = 400
[space]
grid = { start = -1.0, stop = 1.0, num = 7 }
[rewards.warm]
kind = "linear"
weights = [2.0]
[rewards.cool]
kind = "linear"
weights = [-2.0]
[sources.real]
normal = { mean = 0.0, var = 0.25 }
[models.theta]
[models.phi]
[curators.users_theta]
curates = "theta"
K = 6
reward = "warm"
[curators.users_phi]
curates = "phi"
K = 6
reward = "cool"
[[flows]]
from = "real"
to = "theta"
weight = 0.5
[[flows]]
from = "users_theta"
to = "theta"
weight = 0.15
[[flows]]
from = "users_phi"
to = "theta"
weight = 0.35
[[flows]]
from = "real"
to = "phi"
weight = 0.5
[[flows]]
from = "users_phi"
to = "phi"
weight = 0.35
[[flows]]
from = "users_theta"
to = "phi"
weight = 0.15
"""


def _graph(rewards: str = "aligned") -> nx.DiGraph:
    """A and B on :data:`COORDS`: each half real data, the rest curated, own and the other's.

    ``aligned``: A's users like high outcomes (2x), B's a peak inside (x - 2x^2); ``opposed``: 2x
    against -2x."""
    from ecosystem.core.curation import Curator, Luce
    from ecosystem.core.rewards import Tabular

    rng = np.random.default_rng(0)
    real = np.exp(-COORDS ** 2 / 0.5)
    r_b = COORDS - 2 * COORDS ** 2 if rewards == "aligned" else -2 * COORDS
    g = nx.DiGraph()
    g.add_node("data", kind="source", moments=real / real.sum())
    for name, r in (("A", 2 * COORDS), ("B", r_b)):
        g.add_node(name, kind="model", moments=rng.dirichlet(np.ones(N_OUT)))
        g.add_node(f"users_{name}", kind="curator", curator=Curator(Luce(3, 0.5), [Tabular(r)]))
        g.add_edge(name, f"users_{name}")
        g.add_edge("data", name, weight=0.5)
    for u, v, w in (("users_A", "A", 0.25), ("users_B", "A", 0.25), ("users_B", "B", 0.3), ("users_A", "B", 0.2)):
        g.add_edge(u, v, weight=w)
    return g


CASES = {"mean": ("aligned", None), "weighted": ("aligned", [1.0, 3.0]), "min": ("opposed", None)}
"""Per objective, the tiny instance (rewards of :func:`_graph`) and weights."""


def _problem(objective: str = "mean", budget: float = 1.0, graph: nx.DiGraph | None = None,
             weights=None) -> policy.Problem:
    model = categorical(_graph() if graph is None else graph, mode="population")
    return policy.Problem(model, policy.curation_levers(model, hi=0.9), budget, objective, weights)


def _isolated_graph() -> nx.DiGraph:
    """A and B, each half real data and half its own outputs curated by its own users: no cross flows."""
    from ecosystem.core.curation import Curator, Luce
    from ecosystem.core.rewards import Tabular

    rng = np.random.default_rng(1)
    g = nx.DiGraph()
    g.add_node("data", kind="source", moments=rng.dirichlet(np.ones(N_OUT)))
    for name, sign in (("A", 1.0), ("B", -0.5)):
        g.add_node(name, kind="model", moments=rng.dirichlet(np.ones(N_OUT)))
        g.add_node(f"users_{name}", kind="curator", curator=Curator(Luce(3, 0.5), [Tabular(sign * COORDS)]))
        g.add_edge(name, f"users_{name}")
        g.add_edge("data", name, weight=0.5)
        g.add_edge(f"users_{name}", name, weight=0.5)
    return g


def _grid_best(problem: policy.Problem, n: int = 31) -> float:
    best = -np.inf
    for a in np.linspace(problem.lo[0], problem.hi[0], n):
        for b in np.linspace(problem.lo[1], problem.hi[1], n):
            x = np.array([a, b])
            if problem.costs @ x <= problem.budget + 1e-12:
                best = max(best, problem.value(x))
    return best


@pytest.fixture(scope="module")
def reports() -> dict:
    """The report of the tiny two-model instance for each objective (computed once)."""
    return {kind: policy.optimize(_problem(kind, graph=_graph(rewards), weights=weights))
            for kind, (rewards, weights) in CASES.items()}


@pytest.mark.parametrize("kind", ["mean", "min", "weighted"])
def test_optimum_matches_an_exhaustive_grid_and_beats_every_baseline(reports, kind):
    rep = reports[kind]
    opt = rep.policies["optimal"]
    assert opt.predicted >= _grid_best(rep.problem) - 1e-6
    for name in ("siloed", "uniform", "greedy", "none"):
        assert opt.predicted >= rep.policies[name].predicted - 1e-9      # optimize's tie rule: 1e-10
    assert opt.cost <= rep.problem.budget + 1e-12
    assert np.all(opt.levers >= rep.problem.lo) and np.all(opt.levers <= rep.problem.hi)


@pytest.mark.parametrize("kind", ["mean", "weighted", "min"])
def test_kkt_conditions_hold_at_the_optimum(reports, kind):
    """For min in epigraph form: multipliers on the worst-off models' gradients, summing to 1."""
    rep = reports[kind]
    assert rep.kkt < 1e-6 and rep.to_dict()["kkt_residual"] == rep.kkt
    assert policy.kkt_residual(rep.problem, np.array([0.3, 0.3])) > 0.05    # an interior point, not stationary


def test_siloed_equilibrium_has_no_profitable_unilateral_deviation(reports):
    rep = reports["mean"]
    prob, silo = rep.problem, rep.silo
    assert silo.converged and silo.max_gain <= 1e-9
    for p, owner in enumerate(prob.owners()):            # an independent, finer grid
        base = prob.evaluate(silo.levers).alignment[owner]
        for v in np.linspace(prob.lo[p], silo.caps[p], 41):
            y = silo.levers.copy()
            y[p] = v
            assert prob.evaluate(y).alignment[owner] <= base + 1e-9


def test_siloed_owners_stay_within_their_budget_share_and_coordination_pays(reports):
    for rep in reports.values():
        assert np.all(rep.silo.levers * rep.problem.costs <= rep.problem.budget / 2 + 1e-12)
        assert rep.price_of_siloing > 1e-3        # these instances have cross flows that matter
    assert reports["mean"].curate_less() == ["B"]


def test_isolated_models_price_of_siloing_is_zero():
    rep = policy.optimize(_problem("mean", budget=1.8, graph=_isolated_graph()))
    assert abs(rep.price_of_siloing) < 1e-8
    assert np.allclose(rep.policies["optimal"].levers, rep.policies["siloed"].levers, atol=1e-4)
    assert rep.curate_less(tol=1e-4) == []


@pytest.mark.parametrize("kind", ["mean", "min", "weighted"])
def test_predicted_and_simulated_objectives_agree(reports, kind):
    for pol in reports[kind].policies.values():
        assert abs(pol.predicted - pol.simulated) < 1e-8
        assert np.allclose(pol.alignment, pol.simulated_alignment, atol=1e-8)


def test_gradient_matches_resolved_stable_points():
    prob = _problem()
    x = np.array([0.3, 0.6])
    grad = prob.evaluate(x, gradient=True).gradient
    h = 1e-5
    for p in range(2):
        up, down = x.copy(), x.copy()
        up[p] += h
        down[p] -= h
        fd = (prob.evaluate(up).alignment - prob.evaluate(down).alignment) / (2 * h)
        assert np.allclose(grad[:, p], fd, atol=1e-6)


def test_sample_mode_runs_report_an_interval_near_the_prediction(reports):
    rep = reports["mean"]
    opt = rep.policies["optimal"]
    got = policy.simulate_sample(rep.problem, opt.levers, seeds=3, rounds=40, burn_in=20)
    assert got["low"] <= got["mean"] <= got["high"] and got["seeds"] == 3
    assert abs(got["mean"] - opt.predicted) < 0.05          # finite samples (1000 per round) move it a little
    assert policy.simulate_sample(rep.problem, opt.levers, seeds=3, rounds=40, burn_in=20) == got   # seeded


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_the_interval_over_seeds_covers_the_mean_95_percent_of_the_time(seeds):
    """Student-t, not normal: at 3 seeds a 1.96 sd / sqrt(S) interval covers the mean only ~81% of the time."""
    rng = np.random.default_rng(seeds)
    draws = rng.normal(0.3, 2.0, size=(20_000, seeds))
    covered = [low <= 0.3 <= high for _, low, high in map(intervals.interval, draws)]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.006)   # binomial sd 0.0015
    assert intervals.interval(np.array([0.7])) == (0.7, 0.7, 0.7)


def test_a_curator_K_lever_has_exact_gradients_and_simulates():
    from ecosystem.analysis.influence import Parameter

    model = categorical(_graph(), mode="population")
    levers = [*policy.curation_levers(model), policy.Lever(Parameter("K", "users_A"), 1.0, 6.0, 0.05)]
    prob = policy.Problem(model, levers, 1.2)
    x = np.array([0.4, 0.3, 3.5])                       # K real-valued in the analysis
    grad = prob.evaluate(x, gradient=True).gradient[:, 2]
    step = np.array([0.0, 0.0, 1e-5])
    up, down = x + step, x - step
    assert np.allclose(grad, (prob.evaluate(up).alignment - prob.evaluate(down).alignment) / 2e-5, atol=1e-6)
    simulated, _ = policy.simulate(prob, x)
    assert np.allclose(simulated, prob.evaluate(x).alignment, atol=1e-8)


def test_budget_below_the_lower_bounds_is_an_error():
    model = categorical(_graph(), mode="population")
    levers = [policy.Lever(lv.parameter, 0.2, 0.9) for lv in policy.curation_levers(model)]
    with pytest.raises(policy.AnalysisError, match="does not cover"):
        policy.Problem(model, levers, 0.1)


def _printed_run(out: str) -> list[str]:
    """The arguments after ``ecosystem`` of the ``ecosystem run`` command ``optimize`` printed."""
    line = next(line for line in out.splitlines() if line.startswith("  ecosystem run "))
    return shlex.split(line)[1:]


def _run_mean(cli, args: list, out) -> float:
    ran = cli(*args, "--out", out, "--quiet")
    assert ran.status == 0, ran.err
    summary = json.loads((out / "summary.json").read_text())
    return float(np.mean([m["alignment"] for m in summary["models"].values() if m["alignment"] is not None]))


def test_cli_optimize_writes_policy_json_and_run_reproduces_it(cli, workdir):
    scenario = workdir / "tiny.toml"
    scenario.write_text(TINY)
    done = cli("optimize", scenario, "--budget", "0.8", "--out", workdir / "out")
    assert done.status == 0, done.err
    assert "price of siloing" in done.out and "[[events]]" not in done.out
    result = json.loads((workdir / "out" / "policy.json").read_text())
    assert set(result["policies"]) == {"optimal", "siloed", "uniform", "greedy", "none"}
    assert result["absorb"] == "proportional" and result["objective_kind"] == "mean" and result["budget"] == 0.8
    assert result["method"] == "gradient"
    for pol in result["policies"].values():
        assert set(pol["levers"]) == {"theta", "phi"} and "curation_ratio" in pol["levers"]["theta"]
        assert abs(pol["objective"]["predicted"] - pol["objective"]["simulated"]) < 1e-8
        assert set(pol["alignment"]) == {"theta", "phi"}
    opt, sil = result["policies"]["optimal"], result["policies"]["siloed"]
    assert result["price_of_siloing"] == pytest.approx(opt["objective"]["predicted"] - sil["objective"]["predicted"])
    assert (workdir / "out" / "policy.png").stat().st_size > 0
    # the printed command (the flows' weights as overrides) makes `ecosystem run` reproduce the prediction
    args = _printed_run(done.out)
    assert args[:2] == ["run", str(scenario)] and all(a.startswith("flows.") for a in args[2:])
    assert result["reproduce"]["command"] == "ecosystem " + shlex.join(args) and result["reproduce"]["events"] == []
    assert abs(_run_mean(cli, args, workdir / "run") - opt["objective"]["predicted"]) < 1e-8


def test_cli_optimize_default_prints_the_run_that_reproduces_it(cli, workdir):
    done = cli("optimize", "default", "--budget", "1.0")
    assert done.status == 0, done.err
    args = _printed_run(done.out)
    assert args[:2] == ["run", "default"] and "models.B_base.mixture.curated=0.9" in args
    predicted = float(re.search(r"^optimal: objective predicted (\S+),", done.out, re.M).group(1))
    assert abs(_run_mean(cli, args, workdir / "run") - predicted) < 1e-8


def test_cli_optimize_prints_events_for_the_levers_no_key_sets(cli, workdir):
    """In a generated shared pool the levers are the pool's curated shares, which no scenario key
    sets: the command keeps the user's overrides and the levers come as [[events]] to add."""
    pool = ["topology.kind=shared_pool", "topology.n=3", "space.grid={start = -1.0, stop = 1.0, num = 7}"]
    done = cli("optimize", RING, *pool, "--budget", "0.6", "--objective", "min")
    assert done.status == 0, done.err
    args = _printed_run(done.out)
    assert args[1:len(pool) + 2] == [str(RING), *pool] and all(a.startswith("steps=") for a in args[len(pool) + 2:])
    events = done.out[done.out.index("[[events]]"):]
    assert events.count('action = "set_flow"') == 3
    copy = workdir / "ring.toml"
    copy.write_text(RING.read_text() + "\n" + events)
    predicted = float(re.search(r"^optimal: objective predicted (\S+),", done.out, re.M).group(1))
    assert abs(_run_mean(cli, ["run", copy, *args[2:]], workdir / "run") - predicted) < 1e-8


@pytest.mark.parametrize("name, overrides, absorb", [
    ("default", {}, "real"), ("ring", {"topology.kind": "star", "topology.n": 4}, "proportional"),
    ("ring", {"topology.kind": "star", "topology.n": 4}, "raw"), ("ring", {"topology.n": 4}, "real"),
    ("stories/newcomer", {}, "proportional"),
])
def test_lever_overrides_build_the_policys_graph(name, overrides, absorb):
    from ecosystem.formats.names import resolve
    from ecosystem.formats.policy_overrides import lever_overrides
    from ecosystem.formats.scenario import parse, read_toml, with_overrides

    path = resolve(name)
    data = with_overrides(read_toml(path), overrides)
    problem = policy.make_problem(parse(data, origin=str(path)).build(mode="population"), 1.0, absorb=absorb)
    x = problem.feasible(problem.lo + np.random.default_rng(3).random(len(problem.levers)) * (problem.hi - problem.lo))
    keys, left = lever_overrides(data, str(path), problem, x)
    assert keys and left == []
    got = parse(with_overrides(data, keys), origin=str(path)).graph
    want = problem.graph_at(x)
    for u, v, w in want.edges(data="weight"):
        if w:
            assert abs(got.edges[u, v]["weight"] - w) < 1e-12


@pytest.mark.parametrize("args", [
    ["--budget", "-1"],
    ["--budget", "1", "--objective", "weighted"],
    ["--budget", "1", "--objective", "weighted", "--weights", "nobody=2"],
    ["--budget", "1", "--costs", "theta=zero"],
    ["--budget", "1", "--sample-seeds", "-1"],
])
def test_cli_optimize_bad_input_is_one_error_line_and_writes_nothing(cli, workdir, args):
    scenario = workdir / "tiny.toml"
    scenario.write_text(TINY)
    done = cli("optimize", scenario, *args, "--out", workdir / "out")
    assert done.status == 2
    assert done.err.startswith("error:") and len(done.err.strip().splitlines()) == 1
    assert done.out == "" and not (workdir / "out").exists()


def test_browser_analysis_page_shows_optimal_and_siloed_on_request(tmp_path):
    solara = pytest.importorskip("solara")
    import ipyvuetify as v

    from viz import app
    from viz.model import VizModel

    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    m = VizModel(scenario_name=str(path))
    _box, rc = solara.render(app.PolicyView(m), handle_error=False)
    assert not any("price of siloing" in (w.unsafe_innerHTML or "") for w in rc.find(solara.widgets.HTML).widgets)
    rc.find(v.Btn).widget.click()                                  # computed only when asked
    html = " ".join(w.unsafe_innerHTML or "" for w in rc.find(solara.widgets.HTML).widgets)
    assert "price of siloing" in html and "theta" in html and "siloed" in html
    rc.close()
