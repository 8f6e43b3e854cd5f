"""Mesa data collection of an ecosystem: one record per model agent per round, read in one pass."""

from __future__ import annotations

from itertools import repeat

import numpy as np
from mesa import DataCollector

from ecosystem.core.agents import GenerativeModelAgent


class Collector(DataCollector):
    """Mesa's :class:`DataCollector`; while the model agents' reporters are the default ones,
    their records are read from the model's metric arrays in one pass (the same records
    as calling each agent's properties, without thousands of Python calls per round)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._default = dict(self.agenttype_reporters.get(GenerativeModelAgent, {}))

    def _record_agenttype(self, model, agent_type):
        if (agent_type is not GenerativeModelAgent or self.agenttype_reporters[agent_type] != self._default
                or agent_type not in model.agent_types):
            return super()._record_agenttype(model, agent_type)
        agents = list(model.agents_by_type[agent_type])
        rows = np.fromiter((a.index for a in agents), dtype=np.int64, count=len(agents))
        columns = [(model.curation_ratios if c == "curation_ratio" else model.measures[c])[rows].tolist()
                   for c in model.agent_columns]
        return zip(repeat(model.time), (a.unique_id for a in agents), (a.name for a in agents), *columns,
                   strict=False)


def ecosystem_reporter(column: str):
    """A model reporter of the ecosystem column ``column`` (named after it)."""

    def report(model) -> float:
        return model.ecosystem[column]

    report.__name__ = column
    return report
