"""Pools: nodes that mix models' outputs and feed models, curators and other pools."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from conftest import COORDS, N_OUT, categorical, gaussian_row

from ecosystem.core.curation import Curator, Luce, Tilt
from ecosystem.core.families import Gaussian
from ecosystem.core.flows import FlowError
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Linear, Tabular


def pool_graph(sample_size: int = 1000) -> nx.DiGraph:
    g = nx.DiGraph()
    left = np.array([0.2, 0.5, 0.3, 0, 0, 0])
    right = np.array([0, 0, 0, 0.1, 0.6, 0.3])
    g.add_node("sl", kind="source", moments=left)
    g.add_node("sr", kind="source", moments=right)
    for name, src in (("L", "sl"), ("R", "sr")):
        g.add_node(name, kind="model", moments=g.nodes[src]["moments"], sample_size=sample_size)
        g.add_edge(src, name, weight=1.0)
    g.add_node("web", kind="pool")
    g.add_edge("L", "web", weight=0.3)
    g.add_edge("R", "web", weight=0.7)
    g.add_node("users", kind="curator", curator=Curator(Luce(3, 1.0), [Tabular(-COORDS)]))
    g.add_edge("web", "users")
    g.add_node("C", kind="model", moments=np.full(N_OUT, 1 / N_OUT), sample_size=sample_size)
    g.add_edge("web", "C", weight=0.5)
    g.add_edge("users", "C", weight=0.5)
    return g


def test_pool_mixes_models_and_feeds_models():
    g = pool_graph()
    web = 0.3 * g.nodes["sl"]["moments"] + 0.7 * g.nodes["sr"]["moments"]
    expected = 0.5 * web + 0.5 * g.nodes["users"]["curator"].curate(web, -COORDS[None])[0]
    pop = categorical(pool_graph())
    pop.step()
    np.testing.assert_allclose(pop.state[pop.kernel.models.index("C")], expected, rtol=1e-12)
    # sample mode: C's data come from L and R in pool proportions (disjoint supports)
    big = categorical(pool_graph(sample_size=40_000), mode="sample", rng=4)
    big.step()
    c = big.state[big.kernel.models.index("C")]
    assert abs(c[:3].sum() - expected[:3].sum()) < 5 * np.sqrt(0.25 / 40_000) + 1e-3
    np.testing.assert_allclose(c, expected, atol=0.01)


def test_pool_can_feed_pool_and_gaussian_curator_cannot_judge_pool():
    g = pool_graph()
    g.add_node("mirror", kind="pool")
    g.add_edge("web", "mirror", weight=1.0)
    g.edges["web", "C"]["weight"] = 0.25
    g.add_edge("mirror", "C", weight=0.25)
    model = categorical(g)
    model.step()                        # a pool of a pool is fine
    fam = Gaussian(dim=1)
    gg = nx.DiGraph()
    row = gaussian_row(fam, [0.0], [[1.0]])
    gg.add_node("m", kind="model", moments=row)
    gg.add_node("web", kind="pool")
    gg.add_edge("m", "web", weight=1.0)
    gg.add_node("users", kind="curator", curator=Curator(Tilt(1.0), [Linear([1.0])]))
    gg.add_edge("web", "users")
    gg.add_edge("users", "m", weight=1.0)
    with pytest.raises(FlowError, match="'web' -> 'users'"):
        EcosystemModel(gg, fam)
