"""The five-way training mix of a model in one table (``[models.X.mixture]``)."""

from __future__ import annotations

import numpy as np
import pytest

from ecosystem.errors import ScenarioError
from ecosystem.formats.scenario import parse

RULE = {"rule": "luce", "K": 3, "tau": 0.8}


def _categorical(models: dict, extra: dict | None = None) -> dict:
    return {"steps": 6, "space": {"family": "categorical", "coords": np.linspace(-2, 2, 9).tolist()},
            "rewards": {"warm": {"kind": "linear", "weights": [1.0]}, "cool": {"kind": "linear", "weights": [-1.0]}},
            "sources": {"real": {"normal": {"mean": 0.0, "var": 1.0}}}, "models": models, **(extra or {})}


def test_a_mixture_table_equals_the_flows_written_out():
    short = _categorical({
        "p": {"users": {"reward": "warm", **RULE},
              "mixture": {"real": 0.5, "self_curated": 0.2, "cross_curated": 0.2, "cross_raw": 0.1}},
        "q": {"users": {"reward": "cool", **RULE},
              "mixture": {"real": 0.4, "self_raw": 0.1, "cross_curated": 0.5, "cross_curator": "consumer"}}})
    long = _categorical({"p": {}, "q": {}}, {
        "curators": {"cp": {"curates": "p", "reward": "warm", **RULE}, "cq": {"curates": "q", "reward": "cool", **RULE},
                     "cq_on_p": {"curates": "p", "reward": "cool", **RULE}},
        "flows": [{"from": "real", "to": "p", "weight": 0.5}, {"from": "cp", "to": "p", "weight": 0.2},
                  {"from": "cq", "to": "p", "weight": 0.2}, {"from": "q", "to": "p", "weight": 0.1},
                  {"from": "real", "to": "q", "weight": 0.4}, {"from": "q", "to": "q", "weight": 0.1},
                  {"from": "cq_on_p", "to": "q", "weight": 0.5}]})
    a, b = parse(short).build(), parse(long).build()
    a.run(6)
    b.run(6)
    assert np.array_equal(a.state, b.state)
    assert sorted(v for v in parse(short).graph if ".users" in v) == ["p.users", "q.users", "q.users@p"]


def test_cross_shares_split_equally_over_cross_from():
    spec = _categorical({m: {"users": {"reward": "warm", **RULE}, "mixture": {"real": 0.4, "cross_curated": 0.6}}
                         for m in ("a", "b", "c")})
    g = parse(spec).graph
    assert g.edges["b.users", "a"]["weight"] == pytest.approx(0.3)
    assert g.edges["c.users", "a"]["weight"] == pytest.approx(0.3)
    spec["models"]["a"]["mixture"]["cross_from"] = ["c"]
    g = parse(spec).graph
    assert g.edges["c.users", "a"]["weight"] == pytest.approx(0.6) and not g.has_edge("b.users", "a")


@pytest.mark.parametrize(("mix", "message"), [
    ({"real": 0.5, "self_curated": 0.2}, r"models\.p\.mixture: shares sum to 0\.7, not 1"),
    ({"real": 0.5, "cross_curated": 0.5, "cross_from": ["nobody"]}, "models.p.mixture.cross_from"),
    ({"real": 0.5, "self_curated": 0.5, "cross_inputs": "consumer"}, "needs a conditional family"),
    ({"real": 0.5, "cross_curated": 0.5, "cross_curator": "consumer"}, r"needs the users of model 'p'"),
    ({"real": 0.5, "self_raw": 0.5, "typo": 1}, "typo"),
])
def test_bad_mixtures_name_the_key(mix, message):
    spec = _categorical({"p": {"mixture": mix}, "q": {"users": {"reward": "cool", **RULE}, "mixture": {"real": 1.0}}})
    with pytest.raises(ScenarioError, match=message):
        parse(spec)


def test_the_shipped_default_in_one_line_a_model_equals_its_long_form():
    """``scenarios/default.toml`` states each model's mix in one line; ``tests/data/default.toml``
    spells the same ecosystem out flow by flow: the same numbers, bit for bit, in both modes."""
    from pathlib import Path

    from ecosystem.formats.scenario import load

    short, long = load("default"), load(Path(__file__).parent / "data" / "default.toml")
    assert len(Path(short.source).read_text().splitlines()) * 2 <= len(Path(long.source).read_text().splitlines())
    for mode in ("population", "sample"):
        a, b = short.build(mode=mode), long.build(mode=mode)
        a.run(25)
        b.run(25)
        assert a.agents_frame().equals(b.agents_frame()) and a.ecosystem_frame().equals(b.ecosystem_frame())
