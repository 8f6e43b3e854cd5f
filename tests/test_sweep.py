"""Sweeps: the same numbers on every executor, failures recorded, resume after SIGKILL (``mesa.batch_run``:
test_batch.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_study

from ecosystem.errors import NumericalError
from ecosystem.formats import study
from ecosystem.formats.store import Store
from ecosystem.studies import sweep

TABLES = ("rounds", "models", "summaries")


def small_study(tmp_path: Path, extra: str = "", seeds: str = "[0, 1]") -> study.Study:
    return study.load(write_study(tmp_path, f'seeds = {seeds}\n[set]\nsteps = 6\n"topology.n" = 4\n'
                                  '"topology.model.sample_size" = 200\n'
                                  '[variants.topology.ring]\n"topology.kind" = "ring"\n'
                                  '[variants.topology.er]\n"topology.kind" = "erdos_renyi"\n"topology.p" = 0.5\n'
                                  '[grid]\nmode = ["population", "sample"]\n' + extra, "small.toml"))


def sweep_into(s: study.Study, db: Path, **options) -> dict:
    store = Store(db)
    try:
        with sweep.executor(**options) as pool:
            return sweep.execute(s, store, pool, window=4)
    finally:
        store.close()


def tables(db: Path) -> dict:
    store = Store(db)
    try:
        return {t: store.keyed(t) for t in TABLES}
    finally:
        store.close()


def test_serial_process_pool_and_dask_give_identical_numbers(tmp_path):
    s = small_study(tmp_path)
    assert sweep_into(s, tmp_path / "serial.sqlite", workers=1) == {"total": 8, "skipped": 0, "done": 8, "failed": 0}
    sweep_into(s, tmp_path / "pool.sqlite", workers=2)
    serial, pool = tables(tmp_path / "serial.sqlite"), tables(tmp_path / "pool.sqlite")
    assert len(serial["rounds"]) == 8 * 7 and len(serial["models"]) == 8 * 4
    # sample mode and seeds matter: different seeds give different numbers
    rounds = serial["rounds"]
    sample = rounds[rounds["setting_id"] == s.settings[1].id]
    assert not np.array_equal(sample[sample.seed == 0]["mean_alignment"], sample[sample.seed == 1]["mean_alignment"])
    for t in TABLES:
        assert serial[t].equals(pool[t]), t
    pytest.importorskip("distributed")
    sweep_into(s, tmp_path / "dask.sqlite", workers=2, dask="local")
    dask = tables(tmp_path / "dask.sqlite")
    for t in TABLES:
        assert serial[t].equals(dask[t]), t


def test_seeds_run_as_replicate_batches_store_the_numbers_of_separate_runs(tmp_path):
    s = small_study(tmp_path, seeds="[0, 1, 2]")
    assert sweep_into(s, tmp_path / "one.sqlite", workers=1)["done"] == 12
    store = Store(tmp_path / "batched.sqlite")
    try:
        with sweep.executor(workers=1) as pool:
            counts = sweep.execute(s, store, pool, window=2, batch=2)
        runs = store.runs()
    finally:
        store.close()
    assert counts == {"total": 12, "skipped": 0, "done": 12, "failed": 0}
    one, batched = tables(tmp_path / "one.sqlite"), tables(tmp_path / "batched.sqlite")
    for t in TABLES:
        assert one[t].equals(batched[t]), t
    # the sample-mode settings ran as batches (seeds 0 and 1 share their start), population ones alone
    sample = runs[runs["mode"] == "sample"].sort_values("seed")
    assert sample.groupby("topology")["started"].apply(lambda st: st.iloc[0] == st.iloc[1]).all()
    population = runs[runs["mode"] == "population"].sort_values("seed")
    assert not population.groupby("topology")["started"].apply(lambda st: st.iloc[0] == st.iloc[1]).any()


def test_a_batch_that_fails_runs_each_task_alone(tmp_path, monkeypatch):
    s = small_study(tmp_path, seeds="[0, 1]")
    tasks = [sweep.make_task(s, s.settings[1], seed) for seed in (0, 1)]
    assert tasks[0]["scenario"]["mode"] == "sample"
    want = [sweep.run_task(t) for t in tasks]

    def broken(self):
        raise NumericalError("injected")
    from ecosystem.core.replicates import ReplicateBatch
    monkeypatch.setattr(ReplicateBatch, "step", broken)
    got = sweep.run_tasks(tasks)
    assert [r["status"] for r in got] == ["done", "done"]
    for a, b in zip(got, want, strict=True):
        assert a["rounds"] == b["rounds"] and a["summary"] == b["summary"] and a["started"] != want[0]["started"]


def _fail_on_er_sample(task):
    """A worker function with an injected fault: the er/sample setting raises."""
    if task["scenario"]["topology"]["kind"] == "erdos_renyi" and task["scenario"]["mode"] == "sample":
        raise RuntimeError("injected fault")
    return sweep.run_task(task)


def test_a_failing_setting_is_recorded_and_the_rest_finish_then_retried(tmp_path):
    s = small_study(tmp_path)
    db = tmp_path / "s.sqlite"
    store = Store(db)
    # the fault raises inside the worker function (not inside run_task's guard): the sweep
    # records it as failed with the error and goes on
    counts = sweep.execute(s, store, sweep.SerialExecutor(), task=_fail_on_er_sample)
    assert counts == {"total": 8, "skipped": 0, "done": 6, "failed": 2}
    runs = store.runs()
    failed = runs[runs.status == "failed"]
    assert set(failed["topology"]) == {"er"} and set(failed["mode"]) == {"sample"}
    assert all("injected fault" in e for e in failed["error"])
    # the rerun skips the finished runs and retries the failed ones
    started = dict(zip(runs["run_id"], runs["started"], strict=True))
    counts = sweep.execute(s, store, sweep.SerialExecutor())
    assert counts == {"total": 8, "skipped": 6, "done": 2, "failed": 0}
    after = store.runs()
    assert len(after) == 8 and set(after.status) == {"done"}
    for run_id, t in zip(after["run_id"], after["started"], strict=True):
        if run_id not in set(failed["run_id"]):
            assert t == started[run_id]
    store.close()


def test_an_exception_in_the_run_is_recorded_with_its_traceback(tmp_path):
    s = small_study(tmp_path)
    task = sweep.make_task(s, s.settings[0], 0)
    task["scenario"]["topology"]["curation_ratio"] = 2.0  # invalid: the worker's parse raises
    result = sweep.run_task(task)
    assert result["status"] == "failed" and result["rounds"] is None
    assert result["error"].startswith("Traceback") and "curation_ratio: must be <= 1" in result["error"]


def test_sweep_killed_with_sigkill_resumes_without_duplicates_or_recomputation(tmp_path):
    path = write_study(tmp_path, 'seeds = {start = 0, count = 12}\n[set]\nsteps = 25\n"topology.n" = 6\n'
                       'mode = "sample"\n', "kill.toml")
    db = tmp_path / "kill.sqlite"
    cmd = [sys.executable, "-m", "ecosystem", "sweep", str(path), "--db", str(db), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if db.exists():
            try:
                stored = sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if stored >= 3:
                break
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    before = dict(con.execute("SELECT seed, started FROM runs"))
    con.close()
    assert 3 <= len(before) < 12
    done = subprocess.run(cmd[:-1], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"{12 - len(before)} runs done, 0 failed, {len(before)} already finished" in done.stdout
    con = sqlite3.connect(db)
    rows = con.execute("SELECT seed, started, status FROM runs").fetchall()
    assert sorted(seed for seed, _, _ in rows) == list(range(12))  # exactly one row per run
    assert {status for *_, status in rows} == {"done"}
    for seed, started, _ in rows:
        if seed in before:
            assert started == before[seed]  # finished runs were not recomputed
    steps = con.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM rounds").fetchone()
    assert steps == (12 * 26, 12)


def test_convergence_rate_of_a_geometric_decay():
    change = 0.3 * 0.7 ** np.arange(1, 80)
    change[change < 1e-15] = 1e-17  # float noise once converged
    rate, converged = sweep.convergence(change)
    assert rate == pytest.approx(0.7)
    assert converged == int(np.argmax(change < 1e-8)) + 1
    staircase = 0.3 * np.cumprod(np.tile([0.5, 1.0], 20))  # a period-2 decay: 0.5 per two rounds
    assert sweep.convergence(staircase)[0] == pytest.approx(np.sqrt(0.5), rel=0.02)
    assert sweep.convergence(np.full(30, 0.2)) == (pytest.approx(1.0), None)
    assert sweep.convergence(np.array([0.1])) == (None, None)


def test_dask_option_without_dask_installed_is_a_one_line_error(tmp_path, monkeypatch, cli):
    s = small_study(tmp_path)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    done = cli("sweep", s.path, "--dask", "local", "--db", tmp_path / "x.sqlite")
    assert done.status == 2
    err = done.err.strip().splitlines()
    assert err == ['error: --dask needs Dask distributed, which is not installed: pip install -e ".[dask]"']
    assert not (tmp_path / "x.sqlite").exists()


def test_batch_option_runs_the_sweep_and_refuses_less_than_one(tmp_path, cli):
    s = small_study(tmp_path)
    done = cli("sweep", s.path, "--batch", "0", "--db", tmp_path / "x.sqlite")
    assert done.status == 2
    assert done.err.strip().splitlines() == ["error: --batch must be >= 1, got 0"]
    assert not (tmp_path / "x.sqlite").exists()
    done = cli("sweep", s.path, "--batch", "2", "--quiet", "--db", tmp_path / "b.sqlite")
    assert done.status == 0
    sweep_into(s, tmp_path / "one.sqlite", workers=1)
    one, batched = tables(tmp_path / "one.sqlite"), tables(tmp_path / "b.sqlite")
    for t in TABLES:
        assert one[t].equals(batched[t]), t
