"""Learned-model scenarios: the shipped files through the CLI, a study, plugins and bad input."""

from __future__ import annotations

import sys
import tomllib

import numpy as np
import pandas as pd
import pytest
from conftest import SHIPPED

pytest.importorskip("sklearn")

SMALL = """
name = "small"
seed = 3
steps = 3
mode = "sample"
reference = "real"

[space]
family = "learned"
data = "digits"
model = { name = "gaussian_mixture", components = 3, latent = 6 }
init_size = 300
eval_size = 100

[rewards.heavy]
kind = "ink"

[sources.real]

[topology]
kind = "ring"
n = 3
real_share = 0.3
curation_ratio = 0.4
include_self = true

[topology.model]
sample_size = 200

[topology.curator]
K = 3
tau = 0.05
reward = "heavy"
"""


def small(folder, text: str = SMALL, name: str = "small.toml"):
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["learned/digits", "learned/photos"])
def test_each_shipped_learned_scenario_runs_through_the_cli(cli, workdir, name):
    done = cli("run", name, "--steps", 2, "--out", workdir / "out")
    assert done.status == 0, done.err
    agents = pd.read_csv(workdir / "out" / "agents.csv")
    assert {"alignment", "alignment_se", "diversity", "drift", "change"} <= set(agents.columns)
    assert agents["step"].max() == 2 and np.isfinite(agents[["alignment", "drift"]]).all().all()
    shown = np.load(workdir / "out" / "samples.npz", allow_pickle=False)
    spec = tomllib.loads((SHIPPED / f"{name}.toml").read_text())
    assert shown["start"].shape[:2] == (spec["topology"]["n"], 6)
    assert (workdir / "out" / "samples.png").stat().st_size > 0


def test_same_seed_same_csvs_on_one_or_two_fit_processes(cli, workdir):
    path = small(workdir)
    two = small(workdir, SMALL.replace("eval_size = 100", "eval_size = 100\nworkers = 2"), "two.toml")
    for out, seed, file in (("a", 3, path), ("b", 3, path), ("c", 4, path), ("d", 3, two)):
        assert cli("run", file, "--seed", seed, "--out", workdir / out, "--quiet").status == 0
    read = {out: (workdir / out / "agents.csv").read_bytes() for out in "abcd"}
    assert read["a"] == read["b"] == read["d"] != read["c"]


def test_a_study_is_the_same_serially_and_on_a_process_pool(cli, workdir):
    scenario = small(workdir)
    study = small(workdir, f'scenario = "{scenario.name}"\nseeds = {{ start = 0, count = 2 }}\n'
                           '[variants.topology.ring]\n"topology.kind" = "ring"\n'
                           '[variants.topology.star]\n"topology.kind" = "star"\n', "study.toml")
    from ecosystem.formats.store import Store

    frames = []
    for workers in (1, 2):
        db = workdir / f"w{workers}" / "study.sqlite"
        assert cli("sweep", study, "--workers", workers, "--db", db, "--quiet").status == 0
        store = Store(db, readonly=True)
        assert store.count("done") == 4
        frames.append(pd.concat([store.keyed("rounds"), store.keyed("models")], axis=1))
        store.close()
    done = cli("report", db, "--quiet")
    assert done.status == 0, done.err
    runs = pd.read_csv(db.parent / "report" / "runs.csv")
    assert len(runs) == 4 and set(runs["status"]) == {"done"}
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_a_newcomer_copies_a_learned_model_by_event(workdir):
    from ecosystem.formats.scenario import load

    text = SMALL + """
[[events]]
round = 2
action = "add_model"
target = "copy"
value = { init = { copy = "m0" }, sample_size = 100, inputs = [{ from = "real", weight = 1.0 }] }
"""
    model = load(small(workdir, text)).build()
    model.run(1)
    before = model.family.of(model.state[0])
    model.run(1)
    copy = model.family.of(model.state[model.index_of("copy")])
    assert copy is not model.family.of(model.state[0]) and type(copy) is type(before)
    model.run(1)
    assert len(model.agents_frame().query("model == 'copy'")) == 2


PLUGIN = '''
import numpy as np
import ecosystem


class Shifted:
    """A product of independent normals (plain numpy)."""

    def __init__(self, spread: float = 1.0):
        self.spread, self.mean, self.std = spread, None, None

    def fit(self, samples, weights, rng):
        self.mean, self.std = samples.mean(axis=0), samples.std(axis=0) * self.spread + 1e-6

    def sample(self, n, rng):
        return self.mean + self.std * rng.standard_normal((n, len(self.mean)))


ecosystem.register_model("independent_normals", Shifted)
'''


def test_a_plugin_registers_a_model_the_file_names(cli, workdir, monkeypatch):
    (workdir / "my_models.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.delitem(sys.modules, "my_models", raising=False)
    path = small(workdir, SMALL.replace('{ name = "gaussian_mixture", components = 3, latent = 6 }',
                                        '{ name = "independent_normals", spread = 0.9 }'))
    done = cli("run", path, "--out", workdir / "out", "--quiet")
    assert done.status == 2 and "unknown model 'independent_normals'" in done.err
    done = cli("run", path, "--out", workdir / "out", "--quiet", "--plugin", "my_models")
    assert done.status == 0, done.err
    assert len(pd.read_csv(workdir / "out" / "agents.csv")) == 3 * 4


def test_a_plugin_that_cannot_be_imported_is_one_line(cli, workdir):
    done = cli("validate", "learned/digits", "--plugin", "no_such_module_here")
    assert done.status == 2 and done.err.count("\n") == 1
    assert "--plugin no_such_module_here: cannot import it: ModuleNotFoundError" in done.err


@pytest.mark.parametrize(("old", "new", "message"), [
    ('mode = "sample"', 'mode = "population"', 'mode: learned models need mode = "sample"'),
    ('components = 3', 'components = 0', "space.model.components: "),
    ('components = 3', 'colours = 3', "space.model.colours: not a parameter of learned model"),
    ('data = "digits"', 'data = "cifar"', "space.data: unknown data 'cifar'"),
    ('model = { name = "gaussian_mixture", components = 3, latent = 6 }', 'model = "flow"',
     "space.model: unknown model 'flow'"),
    ('kind = "ink"', 'kind = "sparkle"', "rewards.heavy.kind: must be one of"),
    ('[sources.real]', '[sources.real]\ndata = { name = "photos" }', "sources.real.data: has 48 coordinates"),
    ('sample_size = 200', 'sample_size = 200\ninit = { mean = 1 }', "init: a learned model starts from a source"),
])
def test_bad_learned_input_is_one_line_naming_the_key(cli, workdir, old, new, message):
    assert old in SMALL
    done = cli("run", small(workdir, SMALL.replace(old, new, 1)), "--out", workdir / "out")
    assert done.status == 2, done.err
    assert message in done.err and done.err.count("\n") == 1
    assert not (workdir / "out").exists()


def test_analysis_commands_say_learned_models_have_no_population_mode(cli):
    done = cli("analyze", "learned/digits")
    assert done.status == 2 and "learned models run in sample mode only" in done.err
    done = cli("optimize", "learned/digits", "--budget", "1", "--search", "gradient")   # auto: derivative-free
    assert done.status == 2 and "learned models have no population-mode stable point" in done.err
    assert "--search derivative-free" in done.err


def test_the_readme_tells_what_the_digits_scenario_does():
    """The README's numbers for ``learned/digits``: the light-stroke models end heavier."""
    from conftest import ROOT

    from ecosystem.formats.scenario import load

    readme = (ROOT / "README.md").read_text()
    model = load("learned/digits").build()
    model.run(30)
    agents = model.agents_frame().set_index(["step", "model"])["alignment"]
    for name in ("m2", "m3"):
        start, end = agents[0, name], agents[30, name]
        assert end > start + 0.02
        assert f"{start:.3f} to {end:.3f}" in readme
    still = load("learned/digits", {"topology.curation_ratio": 0.0}).build()
    still.run(30)
    moved = still.agents_frame().groupby("model")["alignment"].agg(lambda a: abs(a.iloc[-1] - a.iloc[0]))
    assert moved.max() < 0.004 and "within\n0.004 of its start" in readme


def test_the_readme_tells_what_the_photos_scenario_does():
    """The README's numbers for ``learned/photos``: the warm-hue model gains, then ends below its start."""
    from conftest import ROOT

    from ecosystem.formats.scenario import load

    readme = " ".join((ROOT / "README.md").read_text().split())
    model = load("learned/photos").build()
    model.run(30)
    m0 = model.agents_frame().query("model == 'm0'").set_index("step")["alignment"]
    assert m0[3] > m0[0] > m0[30]
    assert f"alignment {m0[0]:.3f} to {m0[3]:.3f} by round 3" in readme
    assert f"({m0[30]:.3f} at round 30)" in readme


def test_plot_redraws_the_sample_grid_from_the_saved_draws(cli, workdir):
    out = workdir / "out"
    assert cli("run", small(workdir), "--out", out, "--quiet").status == 0
    (out / "samples.png").unlink()
    done = cli("plot", out, "--format", "svg")
    assert done.status == 0, done.err
    assert "samples.svg" in done.out and (out / "samples.svg").read_text().lstrip().startswith("<?xml")
