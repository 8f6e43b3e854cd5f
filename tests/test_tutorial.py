"""docs/tutorial.ipynb is committed without outputs (`make test` executes it with nbmake)."""

import json

from conftest import ROOT


def test_tutorial_is_committed_without_outputs():
    notebook = json.loads((ROOT / "docs" / "tutorial.ipynb").read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
