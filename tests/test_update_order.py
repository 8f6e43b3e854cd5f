"""Update order: synchronous and sequential rounds differ per round and share their fixed point."""

from __future__ import annotations

import numpy as np
from conftest import COORDS, categorical, two_model_graph


def test_synchronous_and_sequential_reach_the_same_fixed_point():
    sync = categorical(two_model_graph(), order="synchronous")
    seq = categorical(two_model_graph(), order="sequential")
    sync.step()
    seq.step()
    # A updates identically; B reads A's new state only in the sequential order
    np.testing.assert_allclose(sync.state[0], seq.state[0], rtol=1e-12)
    assert np.abs(sync.state[1] - seq.state[1]).max() > 1e-4
    sync.run(200)
    seq.run(200)
    np.testing.assert_allclose(sync.state, seq.state, atol=1e-12)
    fixed = sync.state.copy()
    sync.step()
    np.testing.assert_allclose(sync.state, fixed, atol=1e-13)
    assert sync.ecosystem_frame()["max_change"].iloc[-1] < 1e-12
    # the fixed point solves the coupled equations directly
    g = two_model_graph()
    data = g.nodes["data"]["moments"]
    cur_a, cur_b = g.nodes["users_A"]["curator"], g.nodes["users_B"]["curator"]
    table = np.stack([COORDS, -COORDS])
    a_star = 0.5 * data + 0.5 * cur_b.curate(fixed[1], table[1:])[0]
    b_star = 0.5 * data + 0.5 * cur_a.curate(fixed[0], table[:1])[0]
    np.testing.assert_allclose(fixed, np.stack([a_star, b_star]), atol=1e-12)


def test_sequential_sample_mode_runs():
    model = categorical(two_model_graph(), mode="sample", order="sequential", rng=3)
    model.run(3)
    assert np.all(model.state >= 0)
    np.testing.assert_allclose(model.state.sum(axis=1), 1.0)
