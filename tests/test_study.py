"""Study files: expansion of variants, grids and random samples; seeds; validation."""

from __future__ import annotations

import pytest
from conftest import RING, ROOT, SHIPPED, write_study

from ecosystem.formats import study
from ecosystem.formats.study import StudyError


def test_variants_grid_and_seeds_expand_to_every_run(tmp_path):
    path = write_study(tmp_path, """
seeds = [3, 5]
[set]
steps = 7
"topology.n" = 4
[variants.topology.ring]
"topology.kind" = "ring"
[variants.topology.pool]
topology.kind = "shared_pool"
"topology.curation_ratio" = 0.5
[grid]
"topology.curator.K" = [2, 6]
mode = ["population", "sample"]
""")
    s = study.load(path)
    assert s.name == "s" and s.seeds == [3, 5]
    assert s.axes == ["topology", "topology.curator.K", "mode"]
    assert len(s.settings) == 2 * 2 * 2
    assert len(s.runs()) == 16 and [seed for _, seed in s.runs()[:8]] == [3] * 8  # seed-major
    first = s.settings[0]
    assert first.labels == {"topology": "ring"}
    assert first.values == {"topology.curator.K": 2, "mode": "population"}
    assert first.overrides == {"topology.kind": "ring", "topology.curator.K": 2, "mode": "population"}
    assert len({x.id for x in s.settings}) == 8
    # ids are stable: loading again gives the same ids
    assert [x.id for x in study.load(path).settings] == [x.id for x in s.settings]
    # the run's scenario: base, then [set], then the setting, then the seed
    pool = next(x for x in s.settings if x.labels["topology"] == "pool" and x.values["mode"] == "sample")
    data = s.scenario_data(pool, 5)
    assert data["seed"] == 5 and data["steps"] == 7 and data["mode"] == "sample"
    assert data["topology"]["kind"] == "shared_pool" and data["topology"]["curation_ratio"] == 0.5
    assert data["topology"]["n"] == 4
    built = s.build(pool, 5)
    assert built.seed == 5 and built.steps == 7 and "pool" in built.graph


def test_seed_threads_into_random_topologies_unless_topology_seed_is_set(tmp_path):
    text = """
seeds = {start = 0, count = 3}
[set]
"topology.kind" = "erdos_renyi"
"topology.n" = 8
"topology.p" = 0.4
"""
    s = study.load(write_study(tmp_path, text))
    assert s.seeds == [0, 1, 2]
    graphs = [sorted(s.build(s.settings[0], seed).graph.edges) for seed in s.seeds]
    assert graphs[0] != graphs[1] != graphs[2]
    assert graphs[0] == sorted(s.build(s.settings[0], 0).graph.edges)
    fixed = study.load(write_study(tmp_path, text + '"topology.seed" = 11\n', "f.toml"))
    assert len({tuple(sorted(fixed.build(fixed.settings[0], seed).graph.edges)) for seed in fixed.seeds}) == 1


def test_changing_topology_kind_drops_parameters_of_the_old_kind():
    base = {"topology": {"kind": "ring", "n": 6, "directed": False, "real_share": 0.3}}
    data = study.apply(base, {"topology.kind": "communities", "topology.sizes": [2, 2],
                              "topology.p_in": 1.0, "topology.p_out": 0.0})
    assert data["topology"] == {"kind": "communities", "real_share": 0.3, "sizes": [2, 2],
                                "p_in": 1.0, "p_out": 0.0}
    assert base["topology"]["n"] == 6  # the base is not touched
    # a kind taking the same parameter keeps it
    assert study.apply(base, {"topology.kind": "complete"})["topology"]["n"] == 6


def test_random_samples_are_drawn_deterministically_within_bounds(tmp_path):
    text = """
[random]
samples = 6
seed = 4
"topology.curator.tau" = {loguniform = [0.5, 2.0]}
"topology.curator.K" = {integers = [2, 4]}
topology.curation_ratio = {uniform = [0.1, 0.5]}
mode = {choice = ["population", "sample"]}
"""
    s = study.load(write_study(tmp_path, text))
    assert len(s.settings) == 6
    assert s.axes == ["topology.curator.tau", "topology.curator.K", "topology.curation_ratio", "mode"]
    for x in s.settings:
        v = x.values
        assert 0.5 <= v["topology.curator.tau"] <= 2 and v["topology.curator.K"] in (2, 3, 4)
        assert 0.1 <= v["topology.curation_ratio"] <= 0.5 and v["mode"] in ("population", "sample")
        assert isinstance(v["topology.curator.K"], int)
    again = study.load(write_study(tmp_path, text, "t.toml"))
    assert [x.values for x in again.settings] == [x.values for x in s.settings]


def test_the_default_study_compares_topologies_at_equal_size_and_curation():
    s = study.load(SHIPPED / "studies" / "topologies.toml")
    kinds = {x.labels["topology"] for x in s.settings}
    assert len(kinds) >= 6 and len(s.seeds) >= 3
    for x in s.settings:
        if x.values["topology.curator.K"] != 2:
            continue
        built = s.build(x, 0)
        models = [v for v, k in built.graph.nodes(data="kind") if k == "model"]
        assert len(models) == 8, x.labels
        model = built.build()
        for agent in model.model_agents:
            curated = agent.curation_ratio if x.labels["topology"] != "shared_pool" else (
                0.7 * sum(d["weight"] for u, _, d in built.graph.in_edges("pool", data=True)
                          if built.graph.nodes[u]["kind"] == "curator"))
            assert curated == pytest.approx(0.4), (x.labels, agent.name)


@pytest.mark.parametrize("text,message", [
    ('bogus = 1\n', "s.toml: bogus: unknown key"),
    ('seeds = [1, 1]\n', "s.toml: seeds: has repeated seeds"),
    ('seeds = [-1]\n', "s.toml: seeds: must be a non-empty list of integers >= 0"),
    ('[grid]\n"topology.curator.K" = []\n', "s.toml: grid.topology.curator.K: must be a non-empty list"),
    ('[grid]\n"topology.curator.K" = 3\n', "s.toml: grid.topology.curator.K: must be a non-empty list"),
    ('[grid]\nseed = [1, 2]\n', "s.toml: grid.seed: cannot be swept or set: the run seeds come from `seeds`"),
    ('[set]\nsteps = 3\n[grid]\nsteps = [1, 2]\n', "s.toml: grid.steps: is also set in set"),
    ('[random]\nsamples = 2\nmode = {normal = [0, 1]}\n', "s.toml: random.mode: must be one of {uniform"),
    ('[random]\nsamples = 2\nsteps = {uniform = [3, 1]}\n', "random.steps.uniform: must be [lo, hi] with lo <= hi"),
    ('[grid]\n"topology.curaton_ratio" = [0.1]\n',
     "s.toml: setting topology.curaton_ratio=0.1: " + str(RING) + ": topology.curaton_ratio: unknown key"),
    ('[grid]\n"topology.curation_ratio" = [0.2, 0.9]\n',
     "setting topology.curation_ratio=0.9: " + str(RING) + ": topology.curation_ratio: real_share + curation_ratio"),
])
def test_study_errors_name_file_key_and_value(tmp_path, text, message):
    with pytest.raises(StudyError) as err:
        study.load(write_study(tmp_path, text))
    assert message in str(err.value)


def test_missing_base_scenario_and_bad_toml(tmp_path):
    (tmp_path / "a.toml").write_text('scenario = "nowhere.toml"\n')
    with pytest.raises(StudyError, match=r"a.toml: scenario: no scenario file .*nowhere.toml"):
        study.load(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text("scenario = [\n")
    with pytest.raises(StudyError, match="not valid TOML"):
        study.load(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text('scenario = "ring"\n')  # a bare name, as on the command line
    assert study.load(tmp_path / "c.toml").scenario_path.endswith("ring.toml")


def test_cli_study_error_is_one_line_exit_2_and_writes_nothing(workdir, cli):
    path = write_study(workdir, '[grid]\n"topology.curator.K" = [0]\n')
    db = workdir / "out" / "study.sqlite"
    done = cli("sweep", path, "--db", db)
    assert done.status == 2
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "topology.curator.K: must be >= 1" in lines[0]
    assert not (workdir / "out").exists() and not (workdir / "results").exists()


def test_readme_study_example_is_valid(tmp_path):
    import re

    text = (ROOT / "README.md").read_text()
    block = re.search(r"```toml\n(# scenarios/studies/mine.toml.*?)```", text, re.S).group(1)
    path = tmp_path / "studies" / "mine.toml"
    path.parent.mkdir()
    path.write_text(block.replace('"../ring.toml"', f'"{SHIPPED / "ring.toml"}"'))
    s = study.load(path)
    assert len(s.settings) == 8 and len(s.runs()) == 40 and s.analysis
