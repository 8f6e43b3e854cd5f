"""``KEY=VALUE`` overrides on the command line, ``analyze --at`` and tidy printed numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecosystem", *args], capture_output=True, text=True, cwd=cwd)


def test_run_takes_dotted_overrides(tmp_path):
    out = tmp_path / "ring12"
    done = _cli("run", "ring", "topology.n=12", "steps=50", "--out", str(out))
    assert done.returncode == 0, done.stderr
    agents = pd.read_csv(out / "agents.csv")
    assert agents["model"].nunique() == 12 and agents["step"].max() == 50
    assert json.loads((out / "summary.json").read_text())["n_models"] == 12


def test_an_override_alone_applies_to_the_default_scenario(tmp_path):
    done = _cli("run", "steps=3", "seed=7", "--out", str(tmp_path / "d"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["scenario"] == "default" and summary["steps"] == 3 and summary["seed"] == 7


@pytest.mark.parametrize(("override", "key"), [
    ("topology.n=0", "topology.n"), ("topology.nn=3", "topology.nn"), ("=3", "'=3'"),
    ("topology..n=3", "topology..n"), ("steps=ten", "steps"),
])
def test_a_bad_override_is_one_error_line_naming_the_key(tmp_path, override, key):
    out = tmp_path / "never"
    done = _cli("run", "ring", override, "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and key in lines[0]
    assert not out.exists()


def test_analyze_at_a_round_sees_the_events():
    before = _cli("analyze", "stories/curation_switch")
    at = _cli("analyze", "stories/curation_switch", "--at", "40")
    assert before.returncode == at.returncode == 0
    assert "scripted events" in before.stderr and "--at ROUND" in before.stderr
    assert "before round 40" in at.stdout and at.stderr == ""
    assert before.stdout.splitlines()[2] != at.stdout.splitlines()[2]       # the stable alignments differ
    assert "-0.0000" not in before.stdout                                    # no signed zeros


def test_analyze_names_the_models_it_has_no_column_for():
    out = _cli("analyze", "ring", "topology.curated=[\"m0\"]", "topology.n=4").stdout
    assert "curation ratio 0): m0, m2" in out        # m1 and m3 read m0's curated outputs


def test_the_browser_page_applies_the_command_lines_overrides(monkeypatch):
    from ecosystem.formats.names import resolve
    from viz.model import VizModel, page_overrides

    monkeypatch.setenv("ECOSYSTEM_VIZ_SCENARIO", str(resolve("ring")))
    monkeypatch.setenv("ECOSYSTEM_VIZ_OVERRIDES", json.dumps({"topology.n": 7}))
    assert page_overrides(resolve("ring")) == {"topology.n": 7}
    assert page_overrides(resolve("default")) == {}
    assert len(VizModel(scenario_name="ring").kernel.models) == 7


def test_an_override_reaches_a_flow_by_its_number(tmp_path):
    weights = ("flows.0.weight=0.4", "flows.1.weight=0.18", "flows.2.weight=0.42")   # the summariser: 0.6 curated
    done = _cli("run", "conditional/two_tasks", *weights, "steps=2", "--out", str(tmp_path / "more"))
    assert done.returncode == 0, done.stderr
    bad = _cli("run", "conditional/two_tasks", "flows.99.weight=0.4")
    assert bad.returncode == 2 and "'99' is not the number of one of its 6 tables" in bad.stderr
