"""Result folders are written all or nothing; JSON and the database hold no NaN or Infinity."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ecosystem.formats import figures, results
from ecosystem.formats import study as study_mod
from ecosystem.formats.files import json_number, staged, to_json
from ecosystem.formats.scenario import load
from ecosystem.formats.store import Store
from ecosystem.studies import sweep

ROOT = Path(__file__).resolve().parents[1]


def _folder(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in out.iterdir()}


def test_staged_moves_every_file_in_and_keeps_the_others(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / "again.txt").write_text("old")
    with staged(out) as stage:
        assert stage.parent == tmp_path and stage != out and not (out / "new.txt").exists()
        (stage / "again.txt").write_text("new")
        (stage / "new.txt").write_text("new")
    assert _folder(out) == {"keep.txt": "mine", "again.txt": "new", "new.txt": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the stage is gone


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_staged_moves_nothing_on_error(tmp_path, error):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(error), staged(out) as stage:
        (stage / "keep.txt").write_text("half")
        (stage / "other.txt").write_text("half")
        raise error
    assert _folder(out) == {"keep.txt": "mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    fresh = tmp_path / "deeper" / "fresh"
    with pytest.raises(error), staged(fresh) as stage:
        (stage / "a.txt").write_text("half")
        raise error
    assert not fresh.exists() and list((tmp_path / "deeper").iterdir()) == []


def test_a_run_whose_writing_fails_leaves_nothing(tmp_path, monkeypatch):
    scenario = load(ROOT / "scenarios" / "default.toml")
    model = scenario.build(seed=0)
    model.run(2)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(figures, "network", broken)  # the last file written
    with pytest.raises(RuntimeError, match="disk full"):
        results.write(model, scenario, 0, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_json_numbers():
    assert json_number(math.nan) is None and json_number(None) is None
    assert json_number(math.inf) == "inf" and json_number(-np.inf) == "-inf"
    assert json_number("inf") == "inf" and json_number("-inf") == "-inf"  # idempotent
    assert json_number(np.float32(0.5)) == 0.5 and type(json_number(np.int64(3))) is float


def test_to_json_has_no_nan_or_infinity_tokens():
    value = {"a": math.nan, "b": [math.inf, -math.inf, 1.0], "c": (np.float64("nan"), np.float64(2.5)),
             "d": {"e": None, "f": "inf", "g": True, "h": 3}}
    assert to_json(value) == ('{"a": null, "b": ["inf", "-inf", 1.0], "c": [null, 2.5], '
                              '"d": {"e": null, "f": "inf", "g": true, "h": 3}}')
    # through `default` too (here numpy scalars and arrays, as the store and reproductions use it)
    assert to_json({"x": np.float32("nan"), "y": np.array([np.inf, 1.0])},
                   default=lambda v: v.tolist()) == '{"x": null, "y": ["inf", 1.0]}'
    with pytest.raises(TypeError):
        to_json({"x": object()})


def test_to_json_writes_finite_values_as_json_dumps_does():
    value = {"floats": [0.1, 1e-300, -2.5e17, 123456789.123456789, 1 / 3, np.float64(0.2)],
             "ints": [0, -7, 2**70], "nested": {"a": [{"b": (1.5, "x")}], "c": False}, "none": None}
    for options in ({}, {"indent": 2}, {"sort_keys": True}):
        assert to_json(value, **options) == json.dumps(value, **options)


def test_the_store_holds_what_json_would(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(f'scenario = "{ROOT / "scenarios" / "ring.toml"}"\nseeds = [0]\n'
                    '[set]\nsteps = 3\n"topology.n" = 3\n')
    small = study_mod.load(path)
    result = sweep.run_task(sweep.make_task(small, small.settings[0], 0))
    assert result["status"] == "done"
    result["summary"]["observed_rate"] = math.inf
    result["models"][0]["drift"] = -math.inf
    result["rounds"]["mean_alignment"][1] = math.nan
    result["analysis"] = {"spectral_radius": math.inf, "converged": True, "observed_rate": math.nan,
                          "backfire": [], "raw": np.array([[1.0, -np.inf]])}
    store = Store(tmp_path / "s.sqlite")
    store.begin(small)
    store.record(result)
    con = sqlite3.connect(tmp_path / "s.sqlite")
    assert con.execute("SELECT observed_rate, typeof(observed_rate) FROM summaries").fetchone() == ("inf", "text")
    assert con.execute("SELECT drift FROM models ORDER BY model").fetchone() == ("-inf",)
    assert con.execute("SELECT mean_alignment FROM rounds WHERE step = 1").fetchone() == (None,)
    spectral, observed, text = con.execute("SELECT spectral_radius, observed_rate, result FROM analyses").fetchone()
    assert (spectral, observed) == ("inf", None)
    assert json.loads(text)["raw"] == [[1.0, "-inf"]] and "Infinity" not in text and "NaN" not in text
    con.close()
    # read back as floats
    assert store.table("summaries")["observed_rate"].tolist() == [math.inf]
    assert store.table("models").sort_values("model")["drift"].iloc[0] == -math.inf
    runs = store.runs()
    assert runs["analysis_spectral_radius"].tolist() == [math.inf] and runs["observed_rate"].dtype == float
    store.close()
