"""Determinism of EcosystemModel: a seed fixes a sample-mode run; population mode ignores it."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from conftest import categorical, gaussian_row, two_model_graph

from ecosystem.core.curation import Curator, Luce
from ecosystem.core.families import Gaussian
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Quadratic


def run_frames(seed: int, family: str = "categorical"):
    if family == "categorical":
        model = categorical(two_model_graph(), mode="sample", rng=seed)
    else:
        model = EcosystemModel(gaussian_pair_graph(), Gaussian(dim=2), mode="sample", rng=seed)
    model.run(4)
    return model.agents_frame(), model.ecosystem_frame(), model.state.copy()


def gaussian_pair_graph() -> nx.DiGraph:
    fam = Gaussian(dim=2)
    g = nx.DiGraph()
    g.add_node("data", kind="source", moments=gaussian_row(fam, np.zeros(2), np.eye(2)))
    for name in ("P", "Q"):
        g.add_node(name, kind="model", moments=gaussian_row(fam, np.ones(2), 2 * np.eye(2)), sample_size=200)
        g.add_edge("data", name, weight=0.4)
    g.add_node("users", kind="curator", curator=Curator(Luce(4, 1.0), [Quadratic(g=np.array([1.0, 0.0]))]))
    g.add_edge("P", "users")
    g.add_edge("users", "Q", weight=0.6)
    g.add_edge("Q", "P", weight=0.6, transform=(np.array([[0.0, -1.0], [1.0, 0.0]]), np.array([0.5, 0.0])))
    return g


@pytest.mark.parametrize("family", ["categorical", "gaussian"])
def test_same_seed_same_frames_different_seed_differs(family):
    agents_a, eco_a, state_a = run_frames(11, family)
    agents_b, eco_b, state_b = run_frames(11, family)
    pd.testing.assert_frame_equal(agents_a, agents_b)
    pd.testing.assert_frame_equal(eco_a, eco_b)
    np.testing.assert_array_equal(state_a, state_b)
    agents_c, eco_c, state_c = run_frames(12, family)
    assert not np.allclose(state_a, state_c)
    assert not agents_a["alignment"].equals(agents_c["alignment"])
    assert not eco_a["mean_alignment"].equals(eco_c["mean_alignment"])
    # frame layout: one row per round (and per model)
    assert list(eco_a["step"]) == [0, 1, 2, 3, 4]
    assert len(agents_a) == 5 * 2
    assert set(agents_a["model"]) == ({"A", "B"} if family == "categorical" else {"P", "Q"})


def test_population_mode_ignores_the_seed():
    a, b = categorical(two_model_graph(), rng=1), categorical(two_model_graph(), rng=2)
    a.run(5)
    b.run(5)
    np.testing.assert_array_equal(a.state, b.state)
