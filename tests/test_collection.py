"""The model agents' columns are collected as arrays: the records and the frame are Mesa's, to the last bit."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import RING, SHIPPED
from mesa import DataCollector

import ecosystem
from ecosystem.core.agents import GenerativeModelAgent
from ecosystem.formats.scenario import load


def _mesa_records(model) -> list[tuple]:
    """What Mesa's own collector records this round: each agent's properties, agent by agent."""
    return list(DataCollector._record_agenttype(model.datacollector, model, GenerativeModelAgent))


def _stored(model) -> list[tuple]:
    return list(model.datacollector._agenttype_records[model.time][GenerativeModelAgent])


@pytest.mark.parametrize("mode", ["population", "sample"])
def test_records_are_the_agents_properties_while_models_come_and_go(mode):
    model = ecosystem.load(SHIPPED / "stories" / "newcomer" / "scenario.toml").build(mode=mode)
    assert _stored(model) == _mesa_records(model)
    sizes = []
    for step in range(1, 91):      # the newcomer C joins at round 80
        if step == 85:
            model.apply("remove_model", "A")
        model.step()
        records = _stored(model)
        assert records == _mesa_records(model)
        assert model.datacollector._agenttype_records[model.time][GenerativeModelAgent][-1] == records[-1]
        sizes.append(len(records))
    assert sizes[0] == 2 and sizes[80] == 3 and sizes[-1] == 2
    frame = model.datacollector.get_agenttype_vars_dataframe(GenerativeModelAgent)
    pd.testing.assert_frame_equal(frame, DataCollector.get_agenttype_vars_dataframe(model.datacollector,
                                                                                      GenerativeModelAgent),
                                  check_exact=True)


def test_other_reporters_are_collected_by_mesa():
    model = load(RING).build()
    model.datacollector.agenttype_reporters[GenerativeModelAgent]["twice"] = lambda a: 2 * a.alignment
    model.run(2)
    records = model.datacollector._agenttype_records[model.time][GenerativeModelAgent]
    assert isinstance(records, list) and records == _mesa_records(model)
    assert [r[-1] for r in records] == [2 * r[3] for r in records]
