"""Scenario files: every key validated with a message naming file, key and value."""

from __future__ import annotations

import copy

import networkx as nx
import numpy as np
import pytest
from conftest import SHIPPED, data_toml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecosystem.core import flows
from ecosystem.formats.scenario import ScenarioError, load, parse

SCENARIOS = sorted(SHIPPED.glob("*.toml"))
DEFAULT = data_toml("default")
RING = data_toml("ring")


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_load_and_step(path):
    scenario = load(path)
    model = scenario.build()
    model.step()
    assert np.isfinite(model.state).all()


def _mutated(base, edit):
    data = copy.deepcopy(base)
    edit(data)
    return data


BAD = [
    (lambda d: d.update(mode="exact"), "mode: must be one of population, sample"),
    (lambda d: d.update(steps=-3), "steps: must be >= 0"),
    (lambda d: d.update(stepz=3), "stepz: unknown key"),
    (lambda d: d["space"].update(grid={"start": 1, "stop": 2, "num": 1}), "space.grid.num"),
    (lambda d: d["rewards"]["warm"].update(kind="cubic"), "rewards.warm.kind: must be one of"),
    (lambda d: d["rewards"]["warm"].update(weights=[1.0, 2.0]), "rewards.warm.weights: must have shape 1"),
    (lambda d: d["sources"]["real"].update(normal={"mean": 0.0, "var": -1}), "sources.real.normal.var"),
    (lambda d: d["curators"]["warm_base"].update(K=0), "curators.warm_base.K: must be >= 1"),
    (lambda d: d["curators"]["warm_base"].update(tau=0), "curators.warm_base.tau: must be > 0"),
    (lambda d: d["curators"]["warm_base"].update(reward="hot"), "curators.warm_base.reward: unknown reward 'hot'"),
    (lambda d: d["curators"]["warm_base"].update(curates="Z"), "curators.warm_base.curates: unknown"),
    (lambda d: d["models"]["A_base"].update(retention="keep"), "models.A_base.retention"),
    (lambda d: d["models"]["A_base"].update(init="nowhere"), "models.A_base.init: unknown init 'nowhere'"),
    (lambda d: d["flows"][0].update(weight=0.7), "model 'A_base': input shares sum to 1.2"),
    (lambda d: d["flows"][0].update(to="Q"), "flows[0].to: unknown node 'Q'"),
    (lambda d: d["flows"][0].update(weight="half"), "flows[0].weight: must be a number"),
    (lambda d: d["flows"].append(dict(d["flows"][0])), "duplicate flow"),
    (lambda d: d["flows"][0].update(transform={"matrix": [[1.0]]}), "transform needs the gaussian family"),
    (lambda d: d.update(topology={"kind": "ring", "n": 3}), "give either [topology] or explicit"),
    (lambda d: d.update(reference="fake"), "reference: unknown source 'fake'"),
]


@pytest.mark.parametrize("edit,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_names_the_key(edit, message):
    with pytest.raises(ScenarioError) as err:
        parse(_mutated(DEFAULT, edit), origin="x.toml")
    text = str(err.value)
    assert text.startswith("x.toml: ") and message in text and "\n" not in text


def test_curator_cycle_is_rejected():
    data = {
        "space": {"n": 3},
        "sources": {"real": {"uniform": True}},
        "models": {"A": {}},
        "pools": {"p": {}, "q": {}},
        "curators": {"c": {"curates": "p", "reward": "r", "K": 2}},
        "rewards": {"r": {"kind": "tabular", "values": [0, 1, 2]}},
        "flows": [
            {"from": "real", "to": "A", "weight": 1.0},
            {"from": "c", "to": "q", "weight": 1.0},
            {"from": "q", "to": "p", "weight": 1.0},
        ],
    }
    with pytest.raises(ScenarioError, match="cycle through curators/pools"):
        parse(data)


TOPOLOGIES = {
    "complete": {"n": 4}, "ring": {"n": 5, "directed": True}, "star": {"n": 5},
    "erdos_renyi": {"n": 8, "p": 0.4}, "barabasi_albert": {"n": 8, "m": 2, "directed": True},
    "watts_strogatz": {"n": 8, "k": 2, "p": 0.2}, "communities": {"sizes": [3, 4], "p_in": 0.9, "p_out": 0.1},
    "bipartite": {"producers": 2, "consumers": 4, "p": 0.7}, "shared_pool": {"n": 4},
}


@pytest.mark.parametrize("kind", TOPOLOGIES)
def test_every_topology_builds_a_valid_dataflow(kind):
    data = _mutated(RING, lambda d: d.update(topology={
        "kind": kind, **TOPOLOGIES[kind], "real_share": 0.3, "curation_ratio": 0.4,
        "curator": {"K": 3, "rewards": ["warm", "cool"]}}))
    model = parse(data).build()
    n_models = len(model.model_agents)
    assert n_models == TOPOLOGIES[kind].get("n", sum(TOPOLOGIES[kind].get("sizes", [])) or 6)
    for agent in model.model_agents:
        assert agent.real_share == pytest.approx(0.3)
        if kind != "shared_pool":
            assert agent.curation_ratio <= 0.4 + 1e-12
    model.step()


def test_topology_is_seeded():
    def edges(seed):
        data = _mutated(RING, lambda d: d.update(seed=seed, topology={
            "kind": "erdos_renyi", "n": 12, "p": 0.3, "curator": {"reward": "warm"}}))
        return sorted(parse(data).graph.edges)

    assert edges(1) == edges(1)
    assert edges(1) != edges(2)


def test_graph_files_load(tmp_path):
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a")])
    nx.write_graphml(g, tmp_path / "g.graphml")
    (tmp_path / "g.txt").write_text("a b 2\nb c 1\nc a 1\na c 1\n")
    for kind, name in (("graphml", "g.graphml"), ("edgelist", "g.txt")):
        data = _mutated(RING, lambda d, k=kind, n=name: d.update(topology={
            "kind": k, "path": n, "real_share": 0.2, "curation_ratio": 0.0, "curated": "none"}))
        scenario = parse(data, origin=str(tmp_path / "s.toml"))
        assert set(flows.nodes_of(scenario.graph, "model")) == {"a", "b", "c"}
    # c's inputs a and b (edge-list weight 1 each) split its 0.8 synthetic share equally
    assert scenario.graph.edges["a", "c"]["weight"] == pytest.approx(0.4)
    assert scenario.graph.edges["b", "c"]["weight"] == pytest.approx(0.4)
    bad = _mutated(RING, lambda d: d.update(topology={"kind": "graphml", "path": "missing.graphml"}))
    with pytest.raises(ScenarioError, match=r"topology\.path: cannot read graphml file"):
        parse(bad, origin=str(tmp_path / "s.toml"))


_junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                  st.text(max_size=4), st.lists(st.integers(-2, 2), max_size=3),
                  st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _paths(data, prefix=()):
    """Every (container, key) pair inside nested dicts and lists."""
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        yield data, key
        if isinstance(value, dict | list):
            yield from _paths(value, (*prefix, key))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([DEFAULT, RING, data_toml("gaussian")]),
       st.lists(st.tuples(st.integers(0, 10_000), st.booleans(), _junk), min_size=1, max_size=4))
def test_fuzzed_scenarios_never_raise_anything_but_scenario_error(base, edits):
    data = copy.deepcopy(base)
    for pick, delete, value in edits:
        places = list(_paths(data))
        container, key = places[pick % len(places)]
        if delete and isinstance(container, dict):
            del container[key]
        else:
            container[key] = value
    try:
        parse(data, origin="fuzz.toml").build()
    except ScenarioError as err:
        assert str(err).startswith("fuzz.toml: ") and "\n" not in str(err)
