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


def test_readme_plugin_example_registers_its_model(monkeypatch, tmp_path):
    from ecosystem.learned import MODELS

    monkeypatch.delitem(MODELS, "independent_normals", raising=False)
    namespace = _run(_blocks("## Learned models")[0], monkeypatch, tmp_path)
    assert MODELS["independent_normals"] is namespace["IndependentNormals"]
    del MODELS["independent_normals"]
