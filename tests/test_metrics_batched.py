"""Batched metrics: the models of a reward are read as a view of the rows where they are evenly
spaced, with the numbers of a copy to the last bit, in every family."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHIPPED

import ecosystem
from benchmarks import workloads
from ecosystem.core import metrics


def test_evenly_spaced_models_are_a_slice():
    assert metrics._row_index([3]) == slice(3, 4, 1)
    assert metrics._row_index([0, 1, 2]) == slice(0, 3, 1)
    assert metrics._row_index([2, 18, 34]) == slice(2, 35, 16)
    np.testing.assert_array_equal(metrics._row_index([0, 1, 3]), [0, 1, 3])
    groups = metrics.by_reward(["a", None, "b", "a", None, "a"])
    assert [(r, i) for r, i in groups if r == "b"] == [("b", slice(2, 3, 1))]
    np.testing.assert_array_equal(dict(groups)["a"], [0, 3, 5])


@pytest.mark.parametrize("name", ["ring", "gaussian", "conditional/two_tasks", "conditional/linear_gaussian"])
def test_views_give_the_numbers_of_copies(name):
    model = ecosystem.load(SHIPPED / f"{name}.toml").build()
    model.run(3)
    rows = np.tile(model.state, (7, 1))          # many rows of each kind the family makes
    for reward in model.rewards.values():
        for step in (1, 2, 3, 5):
            for start in range(step):
                view = slice(start, len(rows), step)
                np.testing.assert_array_equal(model.family.expected_reward(rows[view], reward),
                                              model.family.expected_reward(rows[np.arange(len(rows))[view]], reward))


def test_alignment_by_groups_is_the_alignment_of_each_model():
    model = workloads.build(workloads.w1_data(n=64, outcomes=32, populations=5, steps=2,
                                              metrics=workloads.W1_METRICS)).build()
    model.run(2)
    evaluation = model._evaluation
    assert all(isinstance(idx, slice) for _, idx in evaluation.groups)     # rewards cycled over the models
    got = model.measures["alignment"]
    for reward, idx in evaluation.groups:      # the numbers of the models' rows copied out
        members = [i for i, r in enumerate(model.eval_rewards) if r is reward]
        np.testing.assert_array_equal(got[idx], model.family.expected_reward(model.state[members], reward))
    read, column = evaluation.cells            # with the model x reward table: every alignment is a cell
    assert evaluation.unnamed == []
    np.testing.assert_array_equal(read, np.arange(64))
    np.testing.assert_array_equal(column, np.arange(64) % 5)
