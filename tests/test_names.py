"""Name resolution: a text ending in ``.toml`` is a path; anything else is a shipped scenario's name.

The regression: a folder of the working directory named like a scenario (``default``, ``ring``) used
to hide the shipped scenario of that name.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RING, SHIPPED

import ecosystem
from ecosystem.errors import UsageError
from ecosystem.formats.names import resolve, shipped


@pytest.fixture
def shadowed(workdir) -> Path:
    """An empty working directory holding folders named like shipped scenarios."""
    for name in ("default", "ring", "stories/newcomer"):
        (workdir / name).mkdir(parents=True)
    return workdir


def test_folders_in_the_working_directory_do_not_hide_shipped_names(shadowed, cli):
    for _ in range(2):                       # the second run writes into the folder the first one filled
        done = cli("run", "ring", "--out", "ring")
        assert done.status == 0, done.err
        assert "Is a directory" not in done.err
    assert (shadowed / "ring" / "summary.json").exists() and (shadowed / "ring" / "model.csv").exists()
    done = cli("analyze", "default")
    assert done.status == 0, done.err
    assert resolve("default") == SHIPPED / "default.toml"
    assert resolve("stories/newcomer") == SHIPPED / "stories" / "newcomer" / "scenario.toml"
    assert ecosystem.load("stories/newcomer").name == "newcomer"


def test_python_api_in_a_fresh_interpreter_ignores_the_folders(shadowed):
    code = "import ecosystem as eco; eco.load('default').build().run(3)"
    done = subprocess.run([sys.executable, "-c", code], cwd=shadowed, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_name_that_is_not_shipped_is_one_line_naming_the_shipped_ones(workdir, cli):
    done = cli("run", "nowhere", "--out", "out")
    assert done.status == 2
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no shipped scenario 'nowhere'"), done.err
    names = shipped()
    assert {"default", "ring", "stories/newcomer"} <= set(names)
    assert all(name in lines[0] for name in names)
    assert "path ending in .toml" in lines[0]
    assert not (workdir / "out").exists()
    with pytest.raises(UsageError, match="no shipped scenario 'nowhere'"):
        ecosystem.load("nowhere")


def test_a_text_ending_in_toml_is_a_path(workdir, cli):
    # never a shipped name: there is no ring.toml here, so it is a missing file
    assert resolve("ring.toml") == Path("ring.toml")
    done = cli("run", "ring.toml", "--out", "out")
    assert done.status == 2 and "no scenario file 'ring.toml'" in done.err and not (workdir / "out").exists()
    # a file of one's own, relative to the working directory (even named like a shipped scenario)
    shutil.copy(RING, workdir / "ring.toml")
    (workdir / "mine").mkdir()
    shutil.copy(RING, workdir / "mine" / "default.toml")
    assert ecosystem.load("ring.toml").source == "ring.toml"
    done = cli("validate", "ring.toml", "mine/default.toml")
    assert done.status == 0, done.err
    assert [line.split(": ")[:2] for line in done.out.splitlines()] == [["ok", "ring.toml"],
                                                                        ["ok", "mine/default.toml"]]
    # inside a study file, relative to the study's folder
    assert resolve("default.toml", base=workdir / "mine") == workdir / "mine" / "default.toml"
