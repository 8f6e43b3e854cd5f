"""The Fig. 3 reproduction drives rounds without metrics: the same numbers as ``model.step()``."""

import numpy as np

from ecosystem.formats.scenario import parse
from ecosystem.studies import reproduce


def test_simulated_j_is_bitwise_the_stepped_model():
    ref = reproduce.mechanism_data()
    t, lam, n, reps, rounds, burn = 0.6, 0.35, 5, 3, 12, 7
    model = parse(reproduce.mechanism_scenario(ref, t, lam, n, reps, seed=4)).build()
    total = np.zeros(2)
    for step in range(rounds):
        model.step()
        if step >= burn:
            total += reproduce._paper_j(model, model.state).reshape(reps, 2).mean(axis=0)
    got, each = reproduce._simulated_j(ref, t, lam, n, reps, rounds, burn, seed=4)
    assert np.array_equal(got, total / (rounds - burn))
    np.testing.assert_allclose(each.mean(axis=0), got, rtol=1e-12)    # each replicate's own mean
    assert not np.array_equal(got, reproduce._simulated_j(ref, t, lam, n, reps, rounds, burn, seed=5)[0])
