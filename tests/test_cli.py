"""End to end through the ``ecosystem`` command, in-process (``main(argv)``; the ``cli`` fixture).

One test runs the real console script and ``python -m ecosystem`` in a subprocess, for their exit
statuses. Inputs other than the shipped default are the pinned copies in ``tests/data/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import RING, SHIPPED


def test_default_scenario_end_to_end(tmp_path, cli):
    out = tmp_path / "res"
    done = cli("run", "--out", out)
    assert done.status == 0, done.err
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
    assert "A_base" in done.out and f"wrote {len(files)} files" in done.out


def test_default_output_folder_is_results_name(workdir, cli):
    done = cli("run", RING, "--steps", "3", "--quiet")
    assert done.status == 0, done.err
    assert (workdir / "results" / "ring" / "summary.json").exists()
    assert done.out == ""


def _csvs(out):
    return {name: (out / name).read_text() for name in ("model.csv", "agents.csv", "cross_alignment.csv")}


def test_same_seed_same_numbers_different_seed_differs(tmp_path, cli):
    runs = {}
    for tag, seed in (("a", 5), ("b", 5), ("c", 6)):
        done = cli("run", RING, "--mode", "sample", "--steps", "5", "--seed", seed, "--out", tmp_path / tag, "--quiet")
        assert done.status == 0, done.err
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
def test_user_errors_are_one_line_exit_2_and_write_nothing(tmp_path, cli, args, message):
    ring = RING.read_text()
    (tmp_path / "BAD.toml").write_text(ring.replace("steps = 100", 'steps = "many"'))
    (tmp_path / "BROKEN.toml").write_text("name = [unclosed\n")
    args = [str(tmp_path / f"{a}.toml") if a in ("BAD", "BROKEN") else a for a in args]
    done = cli(*args, "--out", tmp_path / "out") if args[0] == "run" else cli(*args)
    assert done.status == 2
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.err
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*"))


def test_existing_files_in_out_are_kept(tmp_path, cli):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    done = cli("run", RING, "--steps", "2", "--out", out, "--quiet")
    assert done.status == 0, done.err
    assert (out / "notes.txt").read_text() == "mine" and (out / "summary.json").exists()


def test_validate_ok(cli):
    done = cli("validate", *sorted(SHIPPED.glob("*.toml")))
    assert done.status == 0, done.err
    assert done.out.count("ok: ") == len(list(SHIPPED.glob("*.toml")))


def test_metrics_key_selects_and_is_checked(tmp_path, cli):
    base = RING.read_text()
    good = tmp_path / "good.toml"
    good.write_text('metrics = ["alignment", "diversity"]\n' + base)
    done = cli("run", good, "--steps", "3", "--out", tmp_path / "out", "--quiet")
    assert done.status == 0, done.err
    agents = pd.read_csv(tmp_path / "out" / "agents.csv")
    assert agents["alignment"].notna().all() and agents["drift"].isna().all()
    bad = tmp_path / "bad.toml"
    bad.write_text('metrics = ["alignment", "entropy"]\n' + base)
    done = cli("run", bad, "--out", tmp_path / "nothing")
    assert done.status == 2 and not (tmp_path / "nothing").exists()
    assert done.err.startswith("error: ") and "metrics: unknown metric 'entropy'" in done.err
    assert len(done.err.strip().splitlines()) == 1


def test_console_script_exits_with_mains_status(tmp_path):
    """The process boundary: the installed ``ecosystem`` script exits with ``main``'s status (a user
    error: 2 and one ``error:`` line). ``python -m ecosystem`` exiting 0 is checked by test_sweep's resume."""
    script = Path(sys.executable).with_name("ecosystem")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ecosystem"]
    bad = subprocess.run([*command, "run", "no_such_scenario", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("error: no shipped scenario 'no_such_scenario'") and bad.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
