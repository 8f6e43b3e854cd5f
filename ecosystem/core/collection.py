"""Mesa data collection of an ecosystem: the model agents' columns appended as arrays, one block per round."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
from mesa import DataCollector

from ecosystem.core.agents import GenerativeModelAgent


class _Layout:
    """The model agents in Mesa's order: their rows in the model's arrays ``(N,)``, ids and names."""

    def __init__(self, model) -> None:
        found = list(model.agents_by_type[GenerativeModelAgent])
        self.rows = np.fromiter((a.index for a in found), dtype=np.int64, count=len(found))
        self.ids = [a.unique_id for a in found]
        self.names = [a.name for a in found]


class _Round(Sequence):
    """One round's records of the model agents: Mesa's tuples ``(time, unique_id, name, *columns)``,
    made on demand from the round's columns ``(N,)`` (what :class:`DataCollector` stores as tuples)."""

    __slots__ = ("columns", "layout", "time")

    def __init__(self, time: float, layout: _Layout, columns: list[np.ndarray]) -> None:
        self.time, self.layout, self.columns = time, layout, columns

    def __len__(self) -> int:
        return len(self.layout.ids)

    def __iter__(self) -> Iterator[tuple]:
        return zip(repeat(self.time), self.layout.ids, self.layout.names, *(c.tolist() for c in self.columns),
                   strict=False)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return list(self)[i]
        return (self.time, self.layout.ids[i], self.layout.names[i], *(c[i].item() for c in self.columns))


class Collector(DataCollector):
    """Mesa's :class:`DataCollector`; while the model agents' reporters are the default ones,
    each round's records of them are kept as arrays read from the model's metric arrays
    (:class:`_Round`: the same records as calling each agent's properties, read as Mesa's
    tuples by anything that iterates them, e.g. ``batch_run``), and their data frame is made
    from the arrays."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._default = dict(self.agenttype_reporters.get(GenerativeModelAgent, {}))
        # the model's reporters: the agent's name, then one per agent column named after it
        self._name, *self._columns = list(self._default) or [None]
        self._layout: _Layout | None = None
        self._layout_of: list | None = None
        """The list of model agents the layout was made from (:attr:`EcosystemModel.model_agents`:
        a new list whenever models come or go)."""

    def _columnar(self, model, agent_type: type = GenerativeModelAgent) -> bool:
        return (agent_type is GenerativeModelAgent and self.agenttype_reporters.get(agent_type) == self._default
                and agent_type in model.agent_types)

    def _record_agenttype(self, model, agent_type):
        # the model agents' block is stored by collect() after Mesa's part
        return () if self._columnar(model, agent_type) else super()._record_agenttype(model, agent_type)

    def collect(self, model) -> None:
        super().collect(model)
        if self._columnar(model):
            if self._layout_of is not model.model_agents:
                self._layout, self._layout_of = _Layout(model), model.model_agents
            rows = self._layout.rows
            columns = [(model.curation_ratios if c == "curation_ratio" else model.measures[c])[rows]
                       for c in self._columns]
            self._agenttype_records[model.time][GenerativeModelAgent] = _Round(model.time, self._layout, columns)

    def get_agenttype_vars_dataframe(self, agent_type: type) -> pd.DataFrame:
        """Mesa's frame (index ``Step, AgentID``); the model agents' made from the arrays of each round."""
        rounds = [records[agent_type] for records in self._agenttype_records.values() if agent_type in records]
        if not rounds or not all(isinstance(r, _Round) for r in rounds):
            return super().get_agenttype_vars_dataframe(agent_type)
        data = {"Step": np.repeat([r.time for r in rounds], [len(r) for r in rounds]),
                "AgentID": [i for r in rounds for i in r.layout.ids],
                self._name: [name for r in rounds for name in r.layout.names]}
        data.update({c: np.concatenate([r.columns[k] for r in rounds]) for k, c in enumerate(self._columns)})
        return pd.DataFrame(data).set_index(["Step", "AgentID"])


def ecosystem_reporter(column: str):
    """A model reporter of the ecosystem column ``column`` (named after it)."""

    def report(model) -> float:
        return model.ecosystem[column]

    report.__name__ = column
    return report
