"""Data-flow graph checks: ``flows.validate`` and the model name the node or edge at fault."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from conftest import COORDS, N_OUT, categorical, transform_graph

from ecosystem.core import flows
from ecosystem.core.curation import Curator, Luce
from ecosystem.core.families import Gaussian
from ecosystem.core.flows import FlowError
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Tabular


def valid_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node("s", kind="source", moments=np.full(N_OUT, 1 / N_OUT))
    g.add_node("m", kind="model", moments=np.full(N_OUT, 1 / N_OUT))
    g.add_node("m2", kind="model", moments=np.full(N_OUT, 1 / N_OUT))
    g.add_node("c", kind="curator", curator=Curator(Luce(2, 1.0), [Tabular(COORDS)]))
    g.add_edge("m", "c")
    g.add_edge("s", "m", weight=0.5)
    g.add_edge("c", "m", weight=0.5)
    g.add_edge("m", "m2", weight=1.0)
    return g


def test_valid_graph_passes():
    flows.validate(valid_graph())
    categorical(valid_graph()).step()


def _shares(g):
    g.edges["s", "m"]["weight"] = 0.4


def _two_producers(g):
    g.add_edge("m2", "c")


def _curator_pool_cycle(g):
    g.add_node("web", kind="pool")
    g.add_node("c2", kind="curator", curator=Curator(Luce(2, 1.0), [Tabular(COORDS)]))
    g.add_edge("web", "c2")
    g.add_edge("c2", "web", weight=0.5)
    g.add_edge("m2", "web", weight=0.5)
    g.add_edge("c2", "m2", weight=0.5)
    g.edges["m", "m2"]["weight"] = 0.5


def _unknown_kind(g):
    g.add_node("x", kind="agent")


def _negative(g):
    g.edges["s", "m"]["weight"] = -0.5
    g.edges["c", "m"]["weight"] = 1.5


def _transform_categorical(g):
    g.edges["s", "m"]["transform"] = (np.eye(1), np.zeros(1))


def _curator_of_curator(g):
    g.add_node("c2", kind="curator", curator=Curator(Luce(2, 1.0), [Tabular(COORDS)]))
    g.add_edge("c", "c2")
    g.add_edge("c2", "m2", weight=0.0)


def _source_with_input(g):
    g.add_edge("m2", "s", weight=1.0)


@pytest.mark.parametrize(
    "mutate,pattern",
    [
        (_shares, r"model 'm'.*sum to 0\.9"),
        (_two_producers, r"curator 'c'.*2"),
        (_curator_pool_cycle, r"cycle.*'(web|c2)'.*'(web|c2)'"),
        (_unknown_kind, r"node 'x'.*'agent'"),
        (_negative, r"edge 's' -> 'm'.*-0\.5"),
        (_transform_categorical, r"edge 's' -> 'm'.*gaussian"),
        (_curator_of_curator, r"edge 'c' -> 'c2'"),
        (_source_with_input, r"edge 'm2' -> 's'"),
    ],
)
def test_validate_names_the_problem(mutate, pattern):
    g = valid_graph()
    mutate(g)
    with pytest.raises(FlowError, match=pattern):
        flows.validate(g)
    with pytest.raises(FlowError, match=pattern):       # the model refuses it too
        categorical(g)


def test_validate_gaussian_transform_shape_and_retention():
    fam = Gaussian(dim=2)
    g, _ = transform_graph(1.0)
    g.edges["src", "m"]["transform"] = (np.eye(3), np.zeros(3))
    with pytest.raises(FlowError, match=r"edge 'src' -> 'm'.*2x2"):
        EcosystemModel(g, fam)
    g, _ = transform_graph(1.0)
    g.nodes["m"]["retention"] = "forever"
    with pytest.raises(FlowError, match=r"model 'm'.*retention"):
        EcosystemModel(g, fam)
