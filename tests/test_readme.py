"""The README's Python example runs as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs(monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # the README is project code, not user data
    model = namespace["model"]
    assert model.steps == 40
    b = model.model_agents[1]
    assert abs(b.curation_ratio - 0.2) < 1e-12 and abs(b.real_share - 0.8) < 1e-12
    assert "mean_alignment" in capsys.readouterr().out
