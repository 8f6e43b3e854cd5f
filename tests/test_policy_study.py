"""The price of siloing as a study axis: a study's ``[policy]`` table, the policies stored per run
(equal to ``ecosystem optimize``'s), the report's table and figure, and the errors at load."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from conftest import RING, SHIPPED, write_study

QUICK = """
name = "siloing-quick"
seeds = [0]
[policy]
budget = 3.0
objective = "mean"
[set]
steps = 20
"topology.n" = 3
"topology.real_share" = 0.3
"topology.curation_ratio" = 0.4
"space.grid" = { start = -1.0, stop = 1.0, num = 7 }
[variants.topology.isolated]
"topology.kind" = "erdos_renyi"
"topology.p" = 0.0
[variants.topology.complete]
"topology.kind" = "complete"
"""
"""Three models each; the budget 3 covers every lever's upper bound 0.9, so no owner's share binds."""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The quick study swept serially into a database; returns (folder, runs frame)."""
    from ecosystem.formats import store as store_mod
    from ecosystem.formats import study as study_mod
    from ecosystem.studies.sweep import SerialExecutor, execute

    folder = tmp_path_factory.mktemp("siloing")
    study = study_mod.load(write_study(folder, QUICK))
    store = store_mod.Store(folder / "study.sqlite")
    try:
        counts = execute(study, store, SerialExecutor())
        runs = store.runs()
    finally:
        store.close()
    assert counts["done"] == 2 and counts["failed"] == 0
    return folder, runs.set_index("topology")


def test_stored_price_equals_ecosystem_optimize(swept, cli, workdir):
    _, runs = swept
    done = cli("optimize", RING, "topology.kind=complete", "topology.n=3", "topology.real_share=0.3",
               "topology.curation_ratio=0.4", "space.grid={start = -1.0, stop = 1.0, num = 7}",
               "--budget", "3", "--objective", "mean", "--out", workdir / "opt")
    assert done.status == 0, done.err
    result = json.loads((workdir / "opt" / "policy.json").read_text())
    row = runs.loc["complete"]
    assert abs(row["policy_price_of_siloing"] - result["price_of_siloing"]) < 1e-10
    assert abs(row["policy_optimal"] - result["policies"]["optimal"]["objective"]["predicted"]) < 1e-10
    assert abs(row["policy_siloed"] - result["policies"]["siloed"]["objective"]["predicted"]) < 1e-10
    assert row["policy_price_of_siloing"] > 0.1           # m1's curation helps the others, not m1 itself
    assert row["policy_objective"] == "mean" and row["policy_budget"] == 3.0


def test_isolated_models_have_no_price_of_siloing(swept):
    _, runs = swept
    row = runs.loc["isolated"]
    assert row["policy_price_of_siloing"] == 0.0 and row["policy_optimal"] == row["policy_siloed"]
    assert not row["policy_curate_less"]


def test_report_writes_the_price_of_siloing_table_and_figure(swept):
    from ecosystem.studies import report

    folder, runs = swept
    out, written, _ = report.write(folder / "study.sqlite", folder / "report")
    names = {p.name for p in written}
    assert {"price_of_siloing.csv", "price_of_siloing.md", "price_of_siloing.png"} <= names
    table = pd.read_csv(out / "price_of_siloing.csv").set_index("topology")
    assert list(table.index) == ["isolated", "complete"]
    assert table.loc["complete", "price_mean"] == pytest.approx(runs.loc["complete", "policy_price_of_siloing"])
    assert table.loc["isolated", "price_mean"] == 0.0 and table.loc["complete", "policies"] == 1
    md = (out / "price_of_siloing.md").read_text()
    assert md.startswith("| topology | runs | J optimal | J siloed | price of siloing [95% interval]")
    assert "| isolated | 1 | " in md
    assert (out / "price_of_siloing.png").stat().st_size > 0


def test_interval_over_seeds_is_student_t():
    from scipy import stats

    from ecosystem.studies.report import policy_table

    price = [0.1, 0.2, 0.4]
    runs = pd.DataFrame({"run_id": [1, 2, 3], "topology": ["star"] * 3, "status": ["done"] * 3,
                         "policy_price_of_siloing": price, "policy_optimal": [0.5, 0.6, 0.8],
                         "policy_siloed": [0.4] * 3, "policy_objective": ["mean"] * 3, "policy_budget": [1.0] * 3,
                         "policy_curate_less": ["m1", "m1,m2", ""]})
    row = policy_table(runs, ["topology"]).iloc[0]
    half = stats.t.ppf(0.975, 2) * pd.Series(price).std() / 3 ** 0.5
    assert row["price_mean"] == pytest.approx(0.7 / 3)
    assert row["price_low"] == pytest.approx(0.7 / 3 - half) and row["price_high"] == pytest.approx(0.7 / 3 + half)
    assert row["curate_less"] == "m1 2/3, m2 1/3"


@pytest.mark.parametrize("old, new, match", [
    ("[set]\n", '[set]\nmode = "sample"\n', "needs the population-mode stable point .* runs in sample mode"),
    ('"topology.curation_ratio" = 0.4', '"topology.curation_ratio" = 0.0', "no curation lever to set"),
])
def test_a_setting_whose_policy_cannot_be_computed_is_refused_at_load(cli, workdir, old, new, match):
    path = write_study(workdir, QUICK.replace(old, new, 1))
    done = cli("sweep", path, "--db", workdir / "db.sqlite", "--quiet")
    assert done.status == 2 and done.out == ""
    assert done.err.startswith("error:") and len(done.err.strip().splitlines()) == 1
    assert "setting topology=isolated: policy: " in done.err
    assert re.search(match, done.err), done.err
    assert not (workdir / "db.sqlite").exists()


def test_learned_study_with_a_policy_is_refused_at_load(tmp_path):
    from ecosystem.formats import study as study_mod

    path = tmp_path / "s.toml"
    path.write_text(f'scenario = "{SHIPPED / "learned" / "photos.toml"}"\n[policy]\nbudget = 1.0\n')
    with pytest.raises(study_mod.StudyError, match=r"policy: needs the population-mode stable point.*learned"):
        study_mod.load(path)


@pytest.mark.parametrize("table, match", [
    ("budget = 1.0\nobjective = \"max\"", r"policy.objective: must be one of mean, min, got 'max'"),
    ("", r"policy.budget: is required"),
    ("budget = 1.0\nmax_ratio = 0", r"policy.max_ratio: must be > 0"),
    ("budget = 1.0\nspend = 2", r"policy.*spend"),
])
def test_bad_policy_table_names_the_key(tmp_path, table, match):
    from ecosystem.formats import study as study_mod

    path = write_study(tmp_path, f"[policy]\n{table}\n")
    with pytest.raises(study_mod.StudyError, match=match):
        study_mod.load(path, check=False)


def test_the_policy_is_part_of_the_study_fingerprint(tmp_path):
    from ecosystem.formats import study as study_mod

    plain, one, two = (study_mod.load(write_study(tmp_path, f'name = "same"\n{text}', f"{k}.toml"), check=False)
                       for k, text in (("a", ""), ("b", "[policy]\nbudget = 1.0\n"), ("c", "[policy]\nbudget = 2.0\n")))
    assert plain.policy is None and one.policy == {"budget": 1.0, "objective": "mean", "max_ratio": 0.9,
                                                   "absorb": "proportional"}
    assert len({plain.fingerprint, one.fingerprint, two.fingerprint}) == 3


def test_shipped_siloing_study_loads():
    from ecosystem.formats import study as study_mod

    study = study_mod.load(SHIPPED / "studies" / "siloing.toml")
    assert study.policy["budget"] == 1.0 and len(study.runs()) == 27
    assert study.settings[0].labels["topology"] == "isolated"
