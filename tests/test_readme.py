"""The README's Python examples run as written."""

import re

from conftest import ROOT


def _blocks(section: str = "## Python API"):
    """The Python blocks of the README from ``section`` on."""
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text[text.index(section):], flags=re.S)


def _run(block, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)   # shipped scenarios are found by name from any folder
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # the README is project code, not user data
    return namespace


def test_readme_api_example_runs(monkeypatch, capsys, tmp_path):
    namespace = _run(_blocks()[0], monkeypatch, tmp_path)
    model = namespace["model"]
    assert model.steps == 40
    b = model.model_agents[1]
    assert abs(b.curation_ratio - 0.2) < 1e-12 and abs(b.real_share - 0.8) < 1e-12
    assert "mean_alignment" in capsys.readouterr().out


def test_readme_scripting_example_runs(monkeypatch, tmp_path):
    model = _run(_blocks()[1], monkeypatch, tmp_path)["model"]
    log = model.events_frame()
    assert model.steps == 60
    assert list(log["action"][:2]) == ["set_K", "scale_real_share"]
    assert "remove_model" in set(log["action"]) and "B_more" not in model.graph
    assert "rescue A" in set(log["target"])                     # the rescue fires and nothing undoes it
    assert abs(model.agent("A_base").curation_ratio - 0.2) < 1e-12


def test_readme_plugin_example_registers_its_model(monkeypatch, tmp_path):
    from ecosystem.learned import MODELS

    monkeypatch.delitem(MODELS, "independent_normals", raising=False)
    namespace = _run(_blocks("## Learned models")[0], monkeypatch, tmp_path)
    assert MODELS["independent_normals"] is namespace["IndependentNormals"]
    del MODELS["independent_normals"]


def test_readme_claim_about_the_default_scenario_matches_analyze(cli):
    """The README's words and numbers about the default scenario (a negative self-influence, no
    backfire; THEORY.md section 4, "Words") are what ``ecosystem analyze default`` reports."""
    import json

    text = " ".join((ROOT / "README.md").read_text().split())
    claim = re.search(r"`curation_ratio\[A_base\]` on `A_base` \(self\), first-arrival (\S+), long-run (\S+), "
                      r"and `backfire \.\.\.: none`", text)
    assert claim and "shows a *negative self-influence*" in text
    done = cli("analyze", "default", "--json")
    report = json.loads(done.out)
    entry = next(b for b in report["negative_influence"] if b["parameter"] == "curation_ratio[A_base]"
                 and b["affected"] == "A_base")
    assert entry["scope"] == "self"
    assert f"{entry['raw']:+.4f}".replace("+", "") == claim[1] and f"{entry['influence']:+.4f}" == claim[2]
    assert report["backfire"] == []
    align = dict(zip(report["models"], report["alignment"], strict=True))
    assert f"`A_more` {align['A_more']:.3f} vs `A_base` {align['A_base']:.3f}" in text
    assert "backfire (first-arrival effect > 0, long-run < 0): none" in cli("analyze", "default").out
