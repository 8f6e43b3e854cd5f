"""``BatchModel`` and ``mesa.batch_run``: a scenario as a Mesa model class builds what ``ecosystem run`` builds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import RING
from mesa.batchrunner import batch_run
from mesa.experimental.scenarios import Scenario as MesaScenario

import ecosystem
from ecosystem.studies.batch import BatchModel

STORY = "stories/newcomer"
"""The shipped story, by name: these tests are about it (its scheduled [[events]], 4 of them, through batch_run)."""
SEED = 3
MODES = [None, "sample"]
"""The story's own mode (population), and sample mode, where the seed matters."""


def test_batch_model_works_with_mesa_batch_run():
    rows = batch_run(BatchModel, {"scenario": str(RING), "steps": 5, "topology.curation_ratio": [0.2, 0.5]},
                     rng=[0, 1], max_steps=1000, number_processes=1, display_progress=False)
    assert len(rows) == 4 * 6  # a row per model of each of the 4 runs (model and agent columns)
    assert len({r["RunId"] for r in rows}) == 4 and {r["model"] for r in rows} == {f"m{i}" for i in range(6)}
    assert {(r["topology.curation_ratio"], r["seed"]) for r in rows} == {(0.2, 0), (0.2, 1), (0.5, 0), (0.5, 1)}
    assert {r["Step"] for r in rows} == {5}
    assert all(np.isfinite(r["mean_alignment"]) for r in rows)
    model = BatchModel(scenario=str(RING), seed=3, steps=2, **{"topology.curation_ratio": 0.2})
    assert model.running and model.model_agents[0].curation_ratio == pytest.approx(0.2)
    model.step()
    model.step()
    assert not model.running and model.steps == 2


def test_batch_model_keeps_mesas_scenario_attribute():
    model = BatchModel(scenario=STORY, seed=SEED)
    assert isinstance(model.spec, ecosystem.Scenario) and model.spec.name == "newcomer"
    assert isinstance(model.scenario, MesaScenario) and not isinstance(model.scenario, ecosystem.Scenario)


@pytest.mark.parametrize("mode", MODES, ids=["file_mode", "sample"])
def test_batch_model_runs_the_story_as_ecosystem_load_builds_it(mode):
    extra = {} if mode is None else {"mode": mode}
    batch = BatchModel(scenario=STORY, seed=SEED, **extra)
    while batch.running:
        batch.step()
    spec = ecosystem.load(STORY)
    assert batch.steps == spec.steps > 0
    built = spec.build(seed=SEED, mode=mode)
    built.run(spec.steps)
    assert batch.mode == built.mode == (mode or "population")
    for frame in ("agents_frame", "ecosystem_frame", "events_frame"):
        pd.testing.assert_frame_equal(getattr(batch, frame)(), getattr(built, frame)(), check_exact=True)
    events = batch.events_frame()
    assert len(events) == len(spec.events) > 0            # every scheduled event was applied
    np.testing.assert_array_equal(batch.state, built.state)


@pytest.mark.parametrize("mode", MODES, ids=["file_mode", "sample"])
def test_batch_run_reports_the_numbers_of_ecosystem_run(tmp_path, cli, mode):
    extra = [] if mode is None else ["--mode", mode]
    done = cli("run", STORY, "--seed", SEED, *extra, "--out", tmp_path, "--quiet")
    assert done.status == 0, done.err
    model_csv, agents_csv = pd.read_csv(tmp_path / "model.csv"), pd.read_csv(tmp_path / "agents.csv")
    params = {"scenario": STORY} | ({} if mode is None else {"mode": mode})
    rows = pd.DataFrame(batch_run(BatchModel, params, rng=[SEED], max_steps=10_000, number_processes=1,
                                  display_progress=False, data_collection_period=1))
    assert set(rows["seed"]) == {SEED} and set(rows["RunId"]) == {0}
    assert (rows["Step"] == rows["step"]).all()
    per_step = rows.drop_duplicates("Step").reset_index(drop=True)
    assert list(per_step["Step"]) == list(range(ecosystem.load(STORY).steps + 1))
    # the model reporters of every step are model.csv, to the last bit
    pd.testing.assert_frame_equal(per_step[list(model_csv.columns)], model_csv, check_exact=True)
    # and the agent rows are agents.csv (including the model the story adds)
    agents = rows[list(agents_csv.columns)].astype({"model": agents_csv["model"].dtype}).reset_index(drop=True)
    pd.testing.assert_frame_equal(agents, agents_csv, check_exact=True)
