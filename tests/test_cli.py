"""End to end through the ``ecosystem`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def ecosystem(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "ecosystem", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_default_scenario_end_to_end(tmp_path):
    out = tmp_path / "res"
    done = ecosystem("run", "--out", out)
    assert done.returncode == 0, done.stderr
    files = {p.name for p in out.iterdir()}
    assert {"model.csv", "agents.csv", "summary.json", "cross_alignment.csv",
            "alignment.png", "diversity.png", "graph.png"} <= files
    agents = pd.read_csv(out / "agents.csv")
    assert {"step", "model", "alignment", "diversity"} <= set(agents.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 200 and summary["n_models"] == 4
    assert len(agents) == 4 * 201
    eco = pd.read_csv(out / "model.csv")
    assert list(eco["step"]) == list(range(201))
    # the scenario's story: raising A's curation ratio lowers A's own alignment
    models = summary["models"]
    assert models["A_more"]["curation_ratio"] > models["A_base"]["curation_ratio"]
    assert models["A_more"]["alignment"] < models["A_base"]["alignment"] < 0
    assert "A_base" in done.stdout and f"wrote {len(files)} files" in done.stdout


def test_default_output_folder_is_results_name(tmp_path):
    done = ecosystem("run", ROOT / "scenarios" / "ring.toml", "--steps", "3", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "results" / "ring" / "summary.json").exists()
    assert done.stdout == ""


def _csvs(out):
    return {name: (out / name).read_text() for name in ("model.csv", "agents.csv", "cross_alignment.csv")}


def test_same_seed_same_numbers_different_seed_differs(tmp_path):
    runs = {}
    for tag, seed in (("a", 5), ("b", 5), ("c", 6)):
        done = ecosystem("run", "ring", "--mode", "sample", "--steps", "5", "--seed", seed,
                         "--out", tmp_path / tag, "--quiet")
        assert done.returncode == 0, done.stderr
        runs[tag] = _csvs(tmp_path / tag)
    assert runs["a"] == runs["b"]
    assert runs["a"]["agents.csv"] != runs["c"]["agents.csv"]


@pytest.mark.parametrize("args,message", [
    (["run", "no_such_scenario"], "no shipped scenario 'no_such_scenario'"),
    (["run", "--steps", "-1"], "--steps must be >= 0"),
    (["run", "--mode", "exact"], "invalid choice: 'exact'"),
    (["run", "BAD"], "BAD.toml: steps: must be an integer"),
    (["validate", "BAD"], "BAD.toml: steps: must be an integer"),
    (["run", "BROKEN"], "not valid TOML"),
    (["frobnicate"], "invalid choice"),
])
def test_user_errors_are_one_line_exit_2_and_write_nothing(tmp_path, args, message):
    ring = (ROOT / "scenarios" / "ring.toml").read_text()
    (tmp_path / "BAD.toml").write_text(ring.replace("steps = 100", 'steps = "many"'))
    (tmp_path / "BROKEN.toml").write_text("name = [unclosed\n")
    args = [str(tmp_path / f"{a}.toml") if a in ("BAD", "BROKEN") else a for a in args]
    done = ecosystem(*args, "--out", tmp_path / "out") if args[0] == "run" else ecosystem(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*"))


def test_existing_files_in_out_are_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    done = ecosystem("run", "ring", "--steps", "2", "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert (out / "notes.txt").read_text() == "mine" and (out / "summary.json").exists()


def test_validate_ok():
    done = ecosystem("validate", *sorted((ROOT / "scenarios").glob("*.toml")))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("ok: ") == len(list((ROOT / "scenarios").glob("*.toml")))


def test_metrics_key_selects_and_is_checked(tmp_path):
    base = (ROOT / "scenarios" / "ring.toml").read_text()
    good = tmp_path / "good.toml"
    good.write_text('metrics = ["alignment", "diversity"]\n' + base)
    done = ecosystem("run", good, "--steps", "3", "--out", tmp_path / "out", "--quiet")
    assert done.returncode == 0, done.stderr
    agents = pd.read_csv(tmp_path / "out" / "agents.csv")
    assert agents["alignment"].notna().all() and agents["drift"].isna().all()
    bad = tmp_path / "bad.toml"
    bad.write_text('metrics = ["alignment", "entropy"]\n' + base)
    done = ecosystem("run", bad, "--out", tmp_path / "nothing")
    assert done.returncode == 2 and not (tmp_path / "nothing").exists()
    assert done.stderr.startswith("error: ") and "metrics: unknown metric 'entropy'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
