"""Memory bounded up front (issue 18, item 6): estimates at load, refusals before allocating,
chunked candidate draws in sample mode."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ecosystem.core import budget, rounds
from ecosystem.core.budget import BudgetError, budget_bytes, parse_bytes
from ecosystem.errors import ScenarioError
from ecosystem.formats.scenario import load


def test_parse_bytes_and_env_override(monkeypatch):
    assert parse_bytes("1024") == 1024
    assert parse_bytes("1.5K") == 1536
    assert parse_bytes("8GiB") == 8 * 2**30
    assert parse_bytes("2 mb") == 2 * 2**20
    for bad in ("", "lots", "-1G", "0"):
        with pytest.raises(BudgetError, match=budget.ENV):
            parse_bytes(bad)
    monkeypatch.setenv(budget.ENV, "3M")
    assert budget_bytes() == 3 * 2**20
    monkeypatch.delenv(budget.ENV)
    assert budget_bytes() == budget.available_bytes() > 0


def test_scenario_over_budget_is_refused_at_load_with_what_and_why(monkeypatch):
    monkeypatch.setenv(budget.ENV, "100K")
    with pytest.raises(ScenarioError) as err:
        load("ring")
    msg = str(err.value)
    assert "memory budget of 100 KiB" in msg and budget.ENV in msg and "largest part" in msg
    monkeypatch.delenv(budget.ENV)
    assert load("ring").name == "ring"


@pytest.mark.parametrize(("overrides", "what"), [
    ({"topology.kind": "complete", "topology.n": 100_000}, "complete with n = 100000"),
    ({"topology.kind": "erdos_renyi", "topology.n": 100_000, "topology.p": 1.0}, "erdos_renyi with n = 100000"),
])
def test_huge_topologies_refused_before_generating(overrides, what):
    start = time.perf_counter()
    with pytest.raises(BudgetError, match=what):
        load("ring", overrides)
    assert time.perf_counter() - start < 5.0          # nothing was generated


def test_estimate_grows_with_the_scenario_and_bounds_curation():
    small = load("ring")
    est = budget.estimate(small.graph, small.family, "population", small.steps)
    assert 0 < est.peak_bytes < 100 * 2**20 and est.edges == small.graph.number_of_edges()
    big = load("ring", {"space.grid.num": 1_000_000, "steps": 1})
    big_est = budget.estimate(big.graph, big.family, "population", 1)
    # the dense basis would be 1e6 x ~130 x 16 bytes (2 GB); the banded form's chunks are bounded
    assert big_est.parts["curation"] < 1.5 * 2**30
    assert big_est.peak_bytes > est.peak_bytes


def test_sample_mode_candidates_are_bounded_whatever_k():
    sc = load("ring", {"mode": "sample", "topology.curator.K": 10_000, "topology.model.sample_size": 10_000_000})
    est = budget.estimate(sc.graph, sc.family, "sample", 1)
    assert est.parts["candidates"] <= budget.CANDIDATE_CHUNK * 100


def test_chunked_candidate_draws_keep_the_distribution(monkeypatch):
    """Sample mode draws at most CANDIDATE_CHUNK candidates at once; chunking changes the
    random stream, not the law: best-of-K samples of the ring keep their mean."""
    sc = load("ring", {"mode": "sample", "topology.model.sample_size": 20_000, "steps": 1})

    def one_round():
        m = sc.build(mode="sample", seed=1)
        m.run(1)
        return m.ecosystem_frame()["mean_alignment"].iloc[-1]

    whole = one_round()
    monkeypatch.setattr(rounds, "CANDIDATE_CHUNK", 64)
    chunked = one_round()
    assert chunked != whole and abs(chunked - whole) < 0.02
    assert np.isfinite(chunked)


def test_topology_size_beyond_the_documented_maximum_is_a_key_error():
    with pytest.raises(ScenarioError, match=r"topology.n: must be <= 100000"):
        load("ring", {"topology.n": 1_000_000})


def test_an_event_that_grows_the_run_beyond_the_budget_is_refused_at_load(monkeypatch):
    """A ring that fits, and an event that raises one model's sample size to 1e7 at round 5."""
    monkeypatch.setenv(budget.ENV, "200M")
    growing = {"mode": "sample", "steps": 10,
               "events": [{"round": 5, "action": "set_sample_size", "target": "m0", "value": 10_000_000}]}
    assert load("ring", {"mode": "sample", "steps": 10}).name == "ring"
    with pytest.raises(ScenarioError) as err:
        load("ring", growing)
    msg = str(err.value)
    assert "events[0] at round 5: after it: the run needs about" in msg and "memory budget of 200 MiB" in msg
