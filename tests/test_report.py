"""``ecosystem report``: tables and figures of a small finished study."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import write_study

from ecosystem.formats import study
from ecosystem.formats.store import Store
from ecosystem.studies import sweep


def finished_study(tmp_path: Path, analysis: bool = False, seeds: str = "[0, 1]") -> Path:
    path = write_study(tmp_path, f'seeds = {seeds}\nanalysis = {str(analysis).lower()}\n'
                       '[set]\nsteps = 30\n"topology.n" = 4\n"topology.real_share" = 0.3\n'
                       '[variants.topology.ring]\n"topology.kind" = "ring"\n'
                       '[variants.topology.complete]\n"topology.kind" = "complete"\n'
                       '[variants.topology.er]\n"topology.kind" = "erdos_renyi"\n"topology.p" = 0.6\n'
                       '[grid]\n"topology.curator.K" = [2, 4]\n', "small.toml")
    s = study.load(path)
    db = tmp_path / "res" / "study.sqlite"
    store = Store(db)

    def task(t):  # one injected failure: ring, K = 4, seed 1
        if t["scenario"]["topology"]["kind"] == "ring" and t["scenario"]["topology"]["curator"]["K"] == 4 \
                and t["seed"] == 1:
            raise ValueError("injected")
        return sweep.run_task(t)

    sweep.execute(s, store, sweep.SerialExecutor(), task=task)
    store.close()
    return db


def test_report_writes_tables_and_figures(tmp_path, cli):
    db = finished_study(tmp_path)
    printed = cli("report", db)
    assert printed.status == 0
    out = tmp_path / "res" / "report"
    assert "complete" in printed.out and f"to {out}/" in printed.out
    assert "backfire_by_topology.png: no stable-point analysis" in printed.err
    files = {p.name for p in out.iterdir()}
    assert {"runs.csv", "rounds.csv", "models.csv", "summary.csv", "by_topology.csv", "errors.txt",
            "final_by_topology.png", "alignment_over_rounds.png"} <= files
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 12
    assert list(runs.columns[:5]) == ["run_id", "setting_id", "topology", "topology.curator.K", "seed"]
    assert {"status", "wall_time", "mean_alignment", "mean_diversity", "observed_rate", "error"} <= set(runs)
    failed = runs[runs.status == "failed"]
    assert len(failed) == 1 and failed.iloc[0]["topology"] == "ring" and failed.iloc[0]["seed"] == 1
    assert failed.iloc[0]["error"] == "ValueError: injected" and pd.isna(failed.iloc[0]["mean_alignment"])
    assert "ValueError: injected" in (out / "errors.txt").read_text()
    by = pd.read_csv(out / "by_topology.csv")
    assert list(by["topology"]) == ["ring", "complete", "er"]
    assert list(by["runs"]) == [4, 4, 4] and list(by["failed"]) == [1, 0, 0]
    done = runs[runs.status == "done"]
    assert by.set_index("topology").loc["complete", "mean_alignment_mean"] == pytest.approx(
        done[done.topology == "complete"]["mean_alignment"].mean())
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 6 and set(summary["runs"]) == {2}
    rounds = pd.read_csv(out / "rounds.csv")
    assert len(rounds) == 11 * 31
    for png in ("final_by_topology.png", "alignment_over_rounds.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_report_with_stable_point_analysis(tmp_path, cli):
    pytest.importorskip("ecosystem.analysis")
    db = finished_study(tmp_path, analysis=True, seeds="[0]")
    out = tmp_path / "rep"
    assert cli("report", db, "--out", out, "--quiet").status == 0
    files = {p.name for p in out.iterdir()}
    assert {"analyses.csv", "backfire_by_topology.png", "convergence_vs_spectral_radius.png"} <= files
    runs = pd.read_csv(out / "runs.csv")
    done = runs[runs.status == "done"]
    assert done["analysis_spectral_radius"].notna().all()
    assert ((done["analysis_spectral_radius"] > 0) & (done["analysis_spectral_radius"] < 1)).all()
    # the observed rate of the simulation matches the spectral radius of the analysis
    both = done.dropna(subset=["observed_rate"])
    assert len(both) >= 5
    assert (both["observed_rate"] - both["analysis_spectral_radius"]).abs().max() < 0.05
    assert "backfire_frequency" in pd.read_csv(out / "by_topology.csv")


def test_report_errors_are_one_line(tmp_path, cli):
    done = cli("report", tmp_path / "none.sqlite")
    assert done.status == 2
    assert done.err.strip() == f"error: {tmp_path / 'none.sqlite'}: no such results database"
