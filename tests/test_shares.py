"""Input shares of a model: the curation-ratio and real-share setters rescale the in-edges."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from conftest import categorical, two_model_graph

from ecosystem.core.flows import FlowError


def shares_graph() -> nx.DiGraph:
    g = two_model_graph()
    # A: 0.5 real, 0.2 curated by B's users, 0.1 curated by its own users, 0.2 its own raw outputs
    g.edges["data", "A"]["weight"] = 0.5
    g.edges["users_B", "A"]["weight"] = 0.2
    g.add_edge("users_A", "A", weight=0.1)
    g.add_edge("A", "A", weight=0.2)
    return g


def test_curation_ratio_setter_rescales_shares():
    model = categorical(shares_graph())
    agent = model.model_agents[0]
    assert agent.name == "A"
    assert agent.curation_ratio == pytest.approx(0.3)
    assert agent.real_share == pytest.approx(0.5)
    agent.curation_ratio = 0.6
    g = model.graph
    assert agent.curation_ratio == pytest.approx(0.6)
    # curated edges keep their proportions; the others absorb the change proportionally
    assert g.edges["users_B", "A"]["weight"] == pytest.approx(0.4)
    assert g.edges["users_A", "A"]["weight"] == pytest.approx(0.2)
    assert g.edges["data", "A"]["weight"] == pytest.approx(0.5 * 0.4 / 0.7)
    assert g.edges["A", "A"]["weight"] == pytest.approx(0.2 * 0.4 / 0.7)
    assert sum(w for *_, w in g.in_edges("A", data="weight")) == pytest.approx(1.0, abs=1e-12)
    # B untouched
    assert model.model_agents[1].curation_ratio == pytest.approx(0.5)
    # the kernel was recompiled: the next round uses the new shares
    before = model.state.copy()
    model.step()
    fresh = categorical(model.graph.copy())
    fresh.state[:] = before
    fresh.step()
    np.testing.assert_allclose(model.state, fresh.state, rtol=1e-12)
    assert model.agents_frame().query("model == 'A'")["curation_ratio"].iloc[-1] == pytest.approx(0.6)


def test_theory_example_half_real_half_curated():
    model = categorical(two_model_graph())
    model.model_agents[0].curation_ratio = 0.6
    assert model.graph.edges["data", "A"]["weight"] == pytest.approx(0.4)
    assert model.graph.edges["users_B", "A"]["weight"] == pytest.approx(0.6)
    model.model_agents[1].real_share = 0.8
    assert model.graph.edges["data", "B"]["weight"] == pytest.approx(0.8)
    assert model.graph.edges["users_A", "B"]["weight"] == pytest.approx(0.2)
    assert model.model_agents[1].curation_ratio == pytest.approx(0.2)


def test_share_setter_rejects_impossible_values():
    model = categorical(two_model_graph())
    with pytest.raises(FlowError, match="'A'"):
        model.model_agents[0].curation_ratio = 1.5
    g = two_model_graph()
    g.remove_edge("users_B", "A")
    g.edges["data", "A"]["weight"] = 1.0
    g.remove_node("users_B")
    model = categorical(g)
    with pytest.raises(FlowError, match="no curator inputs"):
        model.model_agents[0].curation_ratio = 0.3
    with pytest.raises(FlowError, match="cannot drop below 1"):
        model.model_agents[0].real_share = 0.5
