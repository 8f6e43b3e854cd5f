"""Mesa agents: the addressable units of an ecosystem, one per data-flow node.

Agents hold no arrays of their own: they read and write views into the model's
batched state, so scripts can select, inspect and change one agent while a round
stays a few array operations for all of them.
"""

from __future__ import annotations

import numpy as np
from mesa.discrete_space import FixedAgent

from ecosystem.core import flows


class _NodeAgent(FixedAgent):
    """An agent standing on the data-flow node ``name``."""

    def __init__(self, model, name: object) -> None:
        super().__init__(model)
        self.name = name
        self.cell = model.grid[name]


class GenerativeModelAgent(_NodeAgent):
    """A generative model retrained each round on its inputs (row ``index`` of the state)."""

    def __init__(self, model, name: object, index: int) -> None:
        super().__init__(model, name)
        self.index = index

    @property
    def moments(self) -> np.ndarray:
        """This model's moment row (a view; see :mod:`ecosystem.families`)."""
        return self.model.state[self.index]

    @property
    def alignment(self) -> float:
        return float(self.model.measures["alignment"][self.index])

    @property
    def diversity(self) -> float:
        return float(self.model.measures["diversity"][self.index])

    @property
    def drift(self) -> float:
        return float(self.model.measures["drift"][self.index])

    @property
    def change(self) -> float:
        return float(self.model.measures["change"][self.index])

    @property
    def curation_ratio(self) -> float:
        """``lambda_i``: the curated share of this model's training mix."""
        return flows.curation_ratio(self.model.graph, self.name)

    @curation_ratio.setter
    def curation_ratio(self, value: float) -> None:
        self.model.set_curation_ratio(self.name, value)

    @property
    def real_share(self) -> float:
        return flows.real_share(self.model.graph, self.name)

    @real_share.setter
    def real_share(self, value: float) -> None:
        self.model.set_real_share(self.name, value)


class CuratorAgent(_NodeAgent):
    """Users judging one producer's outputs; ``K`` and ``tau`` can be changed between rounds."""

    @property
    def curator(self):
        return self.model.graph.nodes[self.name]["curator"]

    @property
    def producer(self) -> object:
        return flows.producer(self.model.graph, self.name)

    @property
    def K(self) -> int:
        return getattr(self.curator.rule, "K", 0)

    @K.setter
    def K(self, value: int) -> None:
        self.model.apply("set_K", self.name, value)

    @property
    def tau(self) -> float:
        return self.curator.tau

    @tau.setter
    def tau(self, value: float) -> None:
        self.model.apply("set_tau", self.name, value)


class DataSourceAgent(_NodeAgent):
    """A real-data source or a shared pool (``kind``)."""

    @property
    def kind(self) -> str:
        return flows.kind(self.model.graph, self.name)
