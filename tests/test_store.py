"""The results database: one transaction per run, no duplicates, resume, export."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
from conftest import write_study

from ecosystem.formats import store as store_mod
from ecosystem.formats import study
from ecosystem.formats.store import Store, StoreError
from ecosystem.studies import sweep


@pytest.fixture
def small(tmp_path):
    return study.load(write_study(tmp_path, 'seeds = [0, 1]\n'
                                  '[set]\nsteps = 4\n"topology.n" = 3\n[grid]\n"topology.curator.K" = [2, 3]\n',
                                  "small.toml"))


def test_record_is_one_row_per_run_and_done_runs_are_never_overwritten(tmp_path, small):
    db = Store(tmp_path / "s.sqlite")
    db.begin(small)
    setting = small.settings[0]
    result = sweep.run_task(sweep.make_task(small, setting, 0))
    assert result["status"] == "done"
    run_id = db.record(result)
    assert db.count() == 1 and db.count("done") == 1
    rounds = db.table("rounds")
    assert list(rounds["step"]) == [0, 1, 2, 3, 4] and set(rounds["run_id"]) == {run_id}
    assert len(db.table("models")) == 3 and len(db.table("summaries")) == 1
    # the same run again (e.g. a second sweep on the same database) is ignored
    again = dict(result, started=result["started"] + 100)
    assert db.record(again) is None
    assert db.count() == 1 and db.table("runs")["started"].iloc[0] == result["started"]
    assert db.finished() == {(setting.id, 0)}
    db.close()


def test_failed_run_is_replaced_by_its_retry_keeping_its_run_id(tmp_path, small):
    db = Store(tmp_path / "s.sqlite")
    db.begin(small)
    setting = small.settings[1]
    failed = {"setting_id": setting.id, "seed": 1, "status": "failed", "started": 1.0, "finished": 2.0,
              "wall_time": 1.0, "worker": "w", "error": "Traceback ...\nValueError: boom\n"}
    run_id = db.record(failed)
    assert db.errors() == [(run_id, setting.id, 1, failed["error"])]
    assert db.runs()["error"].tolist() == ["ValueError: boom"]
    assert db.finished() == set()
    ok = sweep.run_task(sweep.make_task(small, setting, 1))
    assert db.record(ok) == run_id
    assert db.count() == 1 and db.count("done") == 1 and db.errors() == []
    db.close()


def test_a_write_that_fails_midway_leaves_nothing(tmp_path, small):
    db = Store(tmp_path / "s.sqlite")
    db.begin(small)
    result = sweep.run_task(sweep.make_task(small, small.settings[0], 0))
    broken = dict(result, models=[{"model": "m0"}])  # missing columns: fails after the runs row
    with pytest.raises(KeyError):
        db.record(broken)
    assert db.count() == 0 and len(db.table("rounds")) == 0
    db.close()


def test_database_of_another_study_is_refused(tmp_path, small):
    db = Store(tmp_path / "s.sqlite")
    db.begin(small)
    other = study.Study(**{**small.__dict__, "fixed": {"steps": 5}})
    with pytest.raises(StoreError, match="holds runs of another study"):
        db.check(other)
    # more seeds or settings keep the same study
    db.check(study.Study(**{**small.__dict__, "seeds": [0, 1, 2]}))
    db.close()


def test_open_existing_refuses_what_is_not_a_results_database(tmp_path):
    with pytest.raises(StoreError, match="no such results database"):
        store_mod.open_existing(tmp_path / "none.sqlite")
    (tmp_path / "x.sqlite").write_text("hello")
    with pytest.raises(StoreError, match="not SQLite"):
        store_mod.open_existing(tmp_path / "x.sqlite")
    sqlite3.connect(tmp_path / "y.sqlite").execute("CREATE TABLE t (a)").connection.commit()
    with pytest.raises(StoreError, match="another application"):
        store_mod.open_existing(tmp_path / "y.sqlite")


def test_export_csv_and_parquet(tmp_path, small):
    db = Store(tmp_path / "s.sqlite")
    sweep.execute(small, db, sweep.SerialExecutor())
    db.close()
    written = store_mod.export(tmp_path / "s.sqlite", tmp_path / "csv")
    assert sorted(p.name for p in written) == ["models.csv", "rounds.csv", "runs.csv"]
    runs = pd.read_csv(tmp_path / "csv" / "runs.csv")
    assert len(runs) == 4 and set(runs["status"]) == {"done"}
    assert {"run_id", "topology.curator.K", "seed", "wall_time", "mean_alignment", "observed_rate"} <= set(runs)
    pytest.importorskip("pyarrow")
    store_mod.export(tmp_path / "s.sqlite", tmp_path / "pq", parquet=True)
    assert pd.read_parquet(tmp_path / "pq" / "rounds.parquet").equals(pd.read_csv(tmp_path / "pq" / "rounds.csv"))
