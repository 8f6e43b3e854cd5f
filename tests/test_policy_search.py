"""Derivative-free policy search in sample mode (ecosystem.analysis.policy_search, ``ecosystem optimize
--search derivative-free``): against the exact (gradient) optimum, the baselines under common random
numbers, determinism, learned models, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import categorical
from test_policy import _graph

from ecosystem.analysis import policy, policy_search

SEARCH = {"seeds": 3, "rounds": 40, "burn_in": 20, "max_evals": 30}
"""A small search: 3 common seeds, 40 rounds of 1000 samples per model, the last 20 averaged."""
PHOTOS = ["learned/photos", "space.model={name = \"gaussian_mixture\", components = 2, covariance = \"diag\"}",
          "space.init_size=200", "space.eval_size=100", "topology.model.sample_size=100"]
"""The two-model learned scenario, made tiny."""


@pytest.fixture(scope="module", params=[("mean", None), ("weighted", [1.0, 3.0])], ids=["mean", "weighted"])
def pair(request):
    """The exact report (population mode, gradients) and the derivative-free one (sample mode) of the
    two-model instance of test_policy, budget 1."""
    kind, weights = request.param
    exact = policy.optimize(policy.make_problem(categorical(_graph(), mode="population"), 1.0, kind,
                                                weights=weights), simulate_policies=False)
    found = policy_search.search(policy.make_problem(categorical(_graph(), mode="sample"), 1.0, kind,
                                                     weights=weights), **SEARCH)
    return exact, found


def test_search_lands_on_the_exact_optimum(pair):
    exact, found = pair
    opt, est = exact.policies["optimal"], found.policies["optimal"]
    assert np.max(np.abs(est.levers - opt.levers)) < 0.02         # exact: (0.9, 0.1) and (0.1, 0.9)
    sample = est.sample
    assert sample["low"] - 0.005 <= opt.predicted <= sample["high"] + 0.005   # finite samples: a small bias
    assert est.cost <= found.problem.budget + 1e-12 and found.method == "derivative-free"


def test_search_is_never_below_the_baselines_under_common_random_numbers(pair):
    _, found = pair
    best = found.policies["optimal"].sample["mean"]
    for name in ("siloed", "uniform", "none"):
        assert best >= found.policies[name].sample["mean"]
    low, high = found.price_interval
    assert low <= found.price_of_siloing <= high and found.price_of_siloing > 0.1
    assert set(found.policies) == {"optimal", "siloed", "uniform", "none"}


def test_siloed_best_response_stays_in_each_owners_share(pair):
    _, found = pair
    silo = found.silo
    assert silo.converged and silo.max_gain <= 1e-12
    assert np.all(silo.levers <= found.problem.budget / 2 + 1e-12)
    assert np.allclose(silo.levers, [0.5, 0.5])       # as the exact siloed policy: each owner spends its share


def test_same_seed_same_result(pair):
    _, found = pair
    again = policy_search.search(policy.make_problem(categorical(_graph(), mode="sample"), 1.0,
                                                     found.problem.objective,
                                                     weights=found.problem.weights
                                                     if found.problem.objective == "weighted" else None), **SEARCH)
    assert json.dumps(again.to_dict()) == json.dumps(found.to_dict())


def test_policy_json_says_the_method(pair):
    exact, found = pair
    assert exact.to_dict()["method"] == "gradient"
    got = found.to_dict()
    assert got["method"] == "derivative-free" and got["kkt_residual"] is None
    assert got["price_of_siloing_interval"] == list(found.price_interval)
    sample = got["policies"]["optimal"]["objective"]["sample"]
    assert sample["seeds"] == 3 and sample["rounds"] == 40 and sample["burn_in"] == 20


def test_learned_scenario_searches_by_default_and_prints_a_sample_estimate(cli, workdir):
    done = cli("optimize", *PHOTOS, "--budget", "0.8", "--sample-seeds", "2", "--sample-rounds", "3",
               "--burn-in", "1", "--max-evals", "6", "--grid", "3", "--out", workdir / "out")
    assert done.status == 0, done.err
    assert "derivative-free search (COBYQA)" in done.out and "objective sample estimate" in done.out
    assert "(sample estimate, paired over the seeds)" in done.out
    result = json.loads((workdir / "out" / "policy.json").read_text())
    assert result["method"] == "derivative-free" and set(result["policies"]) == {"optimal", "siloed", "uniform",
                                                                                  "none"}
    means = {k: p["objective"]["sample"]["mean"] for k, p in result["policies"].items()}
    assert means["optimal"] >= max(means["uniform"], means["none"], means["siloed"])
    assert "models.m0.curation_ratio=" in result["reproduce"]["command"]
    assert "steps=3" in result["reproduce"]["command"]
    assert (workdir / "out" / "policy.png").stat().st_size > 0
    again = cli("optimize", *PHOTOS, "--budget", "0.8", "--sample-seeds", "2", "--sample-rounds", "3",
                "--burn-in", "1", "--max-evals", "6", "--grid", "3")
    assert again.status == 0 and again.out.split("\n", 1)[1] == done.out.split("\n", 1)[1].split("wrote ")[0]


@pytest.mark.parametrize("args, message", [
    (["--search", "gradient"], "learned models have no population-mode stable point"),
    (["--burn-in", "5", "--sample-rounds", "5"], "--burn-in must be below --sample-rounds (5)"),
    (["--sample-seeds", "0"], "--search derivative-free needs --sample-seeds >= 1"),
    (["--max-evals", "0"], "--max-evals must be >= 1"),
])
def test_cli_bad_search_input_is_one_error_line(cli, workdir, args, message):
    done = cli("optimize", *PHOTOS, "--budget", "0.8", *args, "--out", workdir / "out")
    assert done.status == 2 and done.out == ""
    assert done.err.startswith("error:") and len(done.err.strip().splitlines()) == 1 and message in done.err
    assert not (workdir / "out").exists()


def test_printed_run_reproduces_the_sample_estimate(cli, workdir):
    """The printed command, run with each common seed, averaged over the rounds after the burn-in,
    gives the optimal policy's estimate: the search's runs are ``ecosystem run``'s."""
    import shlex

    import pandas as pd
    from test_policy import TINY

    scenario = workdir / "tiny.toml"
    scenario.write_text(TINY)
    done = cli("optimize", scenario, "--budget", "0.8", "--search", "derivative-free", "--sample-seeds", "2",
               "--sample-rounds", "30", "--burn-in", "10", "--max-evals", "10", "--out", workdir / "out")
    assert done.status == 0, done.err
    result = json.loads((workdir / "out" / "policy.json").read_text())
    args = shlex.split(result["reproduce"]["command"])[1:]
    assert "mode=sample" in args and "steps=30" in args
    values = []
    for seed in (0, 1):
        assert cli(*args, "--seed", seed, "--out", workdir / f"run{seed}", "--quiet").status == 0
        agents = pd.read_csv(workdir / f"run{seed}" / "agents.csv")
        values.append(agents[agents["step"] > 10].groupby("step")["alignment"].mean().mean())
    assert abs(np.mean(values) - result["policies"]["optimal"]["objective"]["sample"]["mean"]) < 1e-12
