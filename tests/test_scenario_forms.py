"""Shorter scenario forms: ``[defaults]`` for models and curators, overrides of generated nodes."""

from __future__ import annotations

import numpy as np
import pytest

from ecosystem.errors import ScenarioError
from ecosystem.formats.scenario import load, parse

BASE = {
    "space": {"family": "categorical", "coords": np.linspace(-1, 1, 7).tolist()},
    "rewards": {"warm": {"kind": "linear", "weights": [1.0]}, "cool": {"kind": "linear", "weights": [-1.0]}},
    "sources": {"real": {"uniform": True}},
}


def test_defaults_fill_every_model_and_curator_that_does_not_say():
    spec = BASE | {
        "defaults": {"model": {"sample_size": 77, "retention": "accumulate"}, "curator": {"rule": "luce", "K": 5}},
        "models": {"a": {}, "b": {"sample_size": 9},
                   "c": {"users": {"reward": "warm"}, "mixture": {"real": 0.5, "curated": 0.5}}},
        "curators": {"ca": {"curates": "a", "reward": "warm"}, "cb": {"curates": "b", "reward": "cool", "K": 2}},
        "flows": [{"from": "real", "to": "a", "weight": 0.5}, {"from": "cb", "to": "a", "weight": 0.5},
                  {"from": "ca", "to": "b", "weight": 1.0}],
    }
    g = parse(spec).graph
    assert [g.nodes[m]["sample_size"] for m in "abc"] == [77, 9, 77]
    assert g.nodes["a"]["retention"] == "accumulate"
    assert g.nodes["ca"]["curator"].rule.K == 5 and g.nodes["cb"]["curator"].rule.K == 2
    assert g.nodes["c.users"]["curator"].rule.K == 5


def test_defaults_reach_the_topology_templates():
    spec = BASE | {"defaults": {"model": {"sample_size": 33}, "curator": {"tau": 0.25}},
                   "topology": {"kind": "ring", "n": 4, "real_share": 0.5, "curator": {"reward": "warm"}}}
    g = parse(spec).graph
    assert g.nodes["m2"]["sample_size"] == 33 and g.nodes["users_m2"]["curator"].rule.tau == 0.25


@pytest.mark.parametrize(("defaults", "message"), [
    ({"model": {"sample_size": 0}}, "defaults.model.sample_size: must be >= 1"),
    ({"model": {"init": "real"}}, "defaults.model.init: unknown key"),
    ({"curator": {"rule": "best"}}, "defaults.curator.rule: must be one of"),
    ({"curator": {"reward": "warm"}}, "defaults.curator.reward: unknown key"),
    ({"model": {"eval_reward": "hot"}}, "defaults.model.eval_reward: unknown reward 'hot'"),
])
def test_bad_defaults_name_the_key(defaults, message):
    spec = BASE | {"defaults": defaults, "models": {"a": {}}, "flows": [{"from": "real", "to": "a", "weight": 1.0}]}
    with pytest.raises(ScenarioError, match=message):
        parse(spec)


def test_a_ring_where_one_model_curates_harder():
    ring = load("ring", {"topology.n": 8})
    harder = load("ring", {"topology.n": 8, "models.m0.curation_ratio": 0.7, "curators.users_m0.K": 10,
                           "models.m3.sample_size": 50})
    g, h = ring.graph, harder.graph
    weights = {u: d["weight"] for u, _, d in h.in_edges("m0", data=True)}
    assert sum(w for u, w in weights.items() if u.startswith("users_")) == pytest.approx(0.7)
    # the rest keeps its proportions: real 0.3 and raw 0.3 of 0.6 become 0.15 and 0.15
    assert weights["real"] == pytest.approx(0.15) and weights["m1"] == pytest.approx(0.075)
    assert h.nodes["users_m0"]["curator"].rule.K == 10 and h.nodes["users_m1"]["curator"].rule.K == 4
    assert h.nodes["users_m0"]["curator"].rewards[0] is harder.rewards["warm"]   # its generated reward kept
    assert h.nodes["m3"]["sample_size"] == 50 and h.nodes["m2"]["sample_size"] == g.nodes["m2"]["sample_size"]
    for v in ("m1", "m4"):                                   # the other models are as generated
        assert {u: w for u, _, w in h.in_edges(v, data="weight")} == {u: w for u, _, w in g.in_edges(v, data="weight")}
    a, b = ring.build(), harder.build()
    a.run(30)
    b.run(30)
    assert b.agent("m0").alignment != pytest.approx(a.agent("m0").alignment)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"models.m9.sample_size": 5}, "models.m9: not a model of the topology"),
    ({"curators.users_m9.K": 5}, "curators.users_m9: not a curator of the topology"),
    ({"models.m0.curation_ratio": 1.5}, "models.m0.curation_ratio: must be <= 1"),
    ({"models.m0.curation_ratio": 0.8, "models.m0.real_share": 0.5}, "leave -0.3 of the mix"),
    ({"pools.web": {}}, "give either \\[topology\\] or explicit \\[pools\\]"),
])
def test_bad_overrides_of_generated_nodes_name_the_key(overrides, message):
    with pytest.raises(ScenarioError, match=message):
        load("ring", overrides)


def test_the_cross_backfire_story_backfires_as_its_readme_says():
    """stories/cross_backfire: P2 first gains (+0.0082 at round 62), then ends 0.066 below P; the
    analysis calls curation_ratio[Q] on P a cross backfire (+0.0695 first, -0.2894 long-run)."""
    from pathlib import Path

    from ecosystem import analysis

    scenario = load("stories/cross_backfire")
    m = scenario.build()
    m.run(scenario.steps)
    a = m.agents_frame()
    gap = (a[a.model == "P2"].set_index("step")["alignment"] - a[a.model == "P"].set_index("step")["alignment"])
    assert gap.loc[:61].abs().max() == 0 and round(gap.loc[62], 4) == 0.0082 and round(gap.iloc[-1], 3) == -0.066
    result = analysis.analyze(scenario.build()).to_dict()
    hit = [b for b in result["backfire"] if b["parameter"] == "curation_ratio[Q]" and b["affected"] == "P"]
    assert len(hit) == 1 and round(hit[0]["raw"], 4) == 0.0695 and round(hit[0]["influence"], 4) == -0.2894
    root = Path(__file__).parents[1]
    for text in (root / "README.md").read_text(), (root / "scenarios/stories/cross_backfire/README.md").read_text():
        assert "+0.0695" in text and "-0.2894" in text and "0.0082" in text
