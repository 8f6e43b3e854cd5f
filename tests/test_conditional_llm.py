"""The ``conditional-llm`` reproduction (:mod:`ecosystem.studies.conditional_llm`) and its shipped
scenario ``conditional/two_tasks``."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SHIPPED

from ecosystem.core import flows
from ecosystem.formats.scenario import load, parse
from ecosystem.studies import conditional_llm as study

CELLS = ("base", "more", "change")


def _numbers(value) -> list:
    """Every number in a JSON value (bools left out)."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def test_quick_reproduction_through_the_cli_writes_a_finite_summary_and_figures(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "ecosystem", "reproduce", "conditional-llm", "--quick",
                           "--seed", "3", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == {"summary.json", "figures.npz", "rounds.png", "changes.png"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reproduction"] == "conditional-llm" and summary["quick"] and summary["seed"] == 3
    configs = summary["configurations"]
    assert list(configs) == list(study.CONFIGURATIONS)
    for config in configs.values():
        for model in study.MODELS:
            for domain in ("own_domain", "other_domain"):
                exact, sampled = config["population"][model][domain], config["sample"][model][domain]
                assert set(exact) == set(CELLS)
                assert set(sampled) == set(CELLS) | {f"{c}_ci95" for c in CELLS}
                assert all(sampled[f"{c}_ci95"] > 0 for c in CELLS)
                assert exact["change"] == pytest.approx(exact["more"] - exact["base"])
        ana = config["analysis"]
        assert ana["models"] == list(study.MODELS) and ana["converged"] and ana["spectral_radius"] < 1
        assert ana["parameters"] == [f"curation_ratio[{m}]" for m in study.MODELS]
        assert np.shape(ana["influence"]) == (2, 2) and np.shape(ana["raw"]) == (2, 2)
        assert isinstance(ana["backfire"], list)
        assert config["lowers_own_alignment"] == (config["population"]["summariser"]["own_domain"]["change"] < 0)
        assert config["lowers_other_model"] == (config["population"]["paraphraser"]["own_domain"]["change"] < 0)
    numbers = _numbers(summary)
    assert numbers and all(math.isfinite(x) for x in numbers)
    assert len(summary["settings"]["seeds"]) == 4


def test_shipped_two_tasks_is_the_exact_base_configuration():
    shipped = load(SHIPPED / "conditional" / "two_tasks.toml").build()
    built = parse(study.configuration("producer_users")).build()
    scenario = load(SHIPPED / "conditional" / "two_tasks.toml")
    assert scenario.mode == "population" and scenario.steps == study.ROUNDS
    np.testing.assert_array_equal(shipped.state, built.state)
    assert {k: v.values.tolist() for k, v in shipped.rewards.items()} == \
           {k: v.values.tolist() for k, v in built.rewards.items()}
    assert sorted(shipped.graph.edges(data="weight")) == sorted(built.graph.edges(data="weight"))
    shipped.run(study.ROUNDS)
    built.run(study.ROUNDS)
    np.testing.assert_array_equal(shipped.measures["domain"], built.measures["domain"])


def test_run_two_tasks_through_the_cli_writes_the_domain_alignment_table(cli, workdir):
    done = cli("run", "conditional/two_tasks", "--out", "out")
    assert done.status == 0, done.err
    summary = json.loads((workdir / "out" / "summary.json").read_text())
    table = summary["domain_alignment"]
    assert set(table) == set(study.MODELS) and all(set(row) == set(study.MODELS) for row in table.values())
    exact = study.domain_trajectory(study.configuration("producer_users"))[-1]
    for i, m in enumerate(study.MODELS):
        for j, d in enumerate(study.MODELS):
            assert table[m][d] == pytest.approx(exact[i, j], rel=1e-12)
    assert (workdir / "out" / "domain_alignment.csv").is_file()


def test_analyze_two_tasks_through_the_cli_prints_influence_and_backfire(cli):
    done = cli("analyze", "conditional/two_tasks")
    assert done.status == 0, done.err
    assert "influence dJ_i*/dp" in done.out
    assert "columns: curation_ratio[summariser]" in done.out
    assert any(line.startswith("backfire") for line in done.out.splitlines())
    for m in study.MODELS:
        assert any(line.strip().startswith(m) for line in done.out.splitlines())


def test_consumer_variant_judges_the_cross_pairs_with_the_consumer_reward():
    model = parse(study.configuration("consumer_users_proxy")).build()
    g = model.graph
    judge = g.nodes["summary_users_on_paraphraser"]["curator"]
    assert flows.producer(g, "summary_users_on_paraphraser") == "paraphraser"
    assert judge.preference is model.rewards["summary_length"]
    assert g.edges["summary_users_on_paraphraser", "summariser"]["inputs"] == "producer"
    # evaluation by the full heuristic, curation by the proxy
    assert [r is model.rewards[study.TASK[m]] for r, m in zip(model.eval_rewards, study.MODELS, strict=True)] \
        == [True, True]
    assert flows.curation_ratio(g, "summariser") == pytest.approx(study.BASE_SHARE)
    raised = parse(study.configuration("consumer_users_proxy", study.MORE_SHARE)).build().graph
    assert flows.curation_ratio(raised, "summariser") == pytest.approx(study.MORE_SHARE)
    assert flows.real_share(raised, "summariser") == pytest.approx(1 - study.MORE_SHARE)


def test_rewards_follow_the_features():
    tables = study.reward_tables()
    # a 250-word article: the summary reward prefers the long copied answer, the paraphrase reward
    # the long answer in its own words; the proxies cannot tell copying apart
    assert np.argmax(tables["summary"][3]) == 3 and np.argmax(tables["paraphrase"][3]) == 2
    for proxy in ("summary_length", "paraphrase_length"):
        np.testing.assert_array_equal(tables[proxy][:, 0], tables[proxy][:, 1])


def test_same_seed_same_numbers():
    seeds = study.sample_seeds(7, 2)
    assert seeds == study.sample_seeds(7, 2) and seeds != study.sample_seeds(8, 2)
    a = study.sampled_trajectories("producer_users", study.BASE_SHARE, 300, seeds)
    np.testing.assert_array_equal(a, study.sampled_trajectories("producer_users", study.BASE_SHARE, 300, seeds))


def test_sample_mode_agrees_with_the_exact_mode_at_a_large_sample_size():
    exact = study.domain_trajectory(study.configuration("producer_users"))[-1]
    sampled = study.sampled_trajectories("producer_users", study.BASE_SHARE, 20_000, study.sample_seeds(0, 10))
    mean, half = study.interval(sampled[:, -1])
    assert np.all(half > 0) and np.all(half < 0.02)
    assert np.all(np.abs(mean - exact) <= half), (mean, exact, half)
