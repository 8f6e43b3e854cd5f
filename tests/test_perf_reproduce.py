"""The Fig. 3 reproduction drives rounds without metrics, its grid points as one replicate batch:
the same numbers as each grid point's ``model.step()``."""

import numpy as np
from scipy import stats

from ecosystem.formats.scenario import parse
from ecosystem.studies import reproduce


def _stepped(ref: dict, t: float, lam: float, n: int, reps: int, rounds: int, burn: int, seed: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """J after the burn-in, ``(2,)`` averaged as the reproduction does, and per replicate ``(reps, 2)``."""
    model = parse(reproduce.mechanism_scenario(ref, t, lam, n, reps, seed=seed)).build()
    total, each = np.zeros(2), np.zeros((reps, 2))
    for step in range(rounds):
        model.step()
        if step >= burn:
            j = reproduce._paper_j(model, model.state).reshape(reps, 2)
            total += j.mean(axis=0)
            each += j
    return total / (rounds - burn), each / (rounds - burn)


def _stepped_j(*args, **kwargs) -> np.ndarray:
    return _stepped(*args, **kwargs)[0]


def test_simulated_j_is_bitwise_the_stepped_model():
    ref = reproduce.mechanism_data()
    points, reps, rounds, burn = [(0.6, 0.35, 5), (0.2, 0.0, 9), (0.9, 0.6, 3)], 3, 12, 7
    runs = reproduce._simulated_j(ref, points, reps, rounds, burn, seed=4)
    for (t, lam, n), (got, each) in zip(points, runs, strict=True):
        assert np.array_equal(got, _stepped_j(ref, t, lam, n, reps, rounds, burn, seed=4))
        np.testing.assert_allclose(each.mean(axis=0), got, rtol=1e-12)    # each replicate's own mean
    other = reproduce._simulated_j(ref, points[:1], reps, rounds, burn, seed=5)[0][0]
    assert not np.array_equal(runs[0][0], other)


def test_sampled_derivative_pairs_the_runs_of_each_coupling():
    ref = reproduce.mechanism_data()
    ts, lam, delta, reps, rounds, burn = np.array([0.3, 0.8]), 0.35, 0.1, 3, 6, 3
    got = reproduce._sampled_derivative(ref, ts, lam, delta, (4, 7), reps, rounds, burn, seed=2)
    for n in (4, 7):
        assert got[n].shape == (2, len(ts), 2)
        for k, t in enumerate(ts):
            (up, up_each), (down, down_each) = (_stepped(ref, t, lam + sign * delta, n, reps, rounds, burn, seed=2)
                                                for sign in (1, -1))
            assert np.array_equal(got[n][0, k], (up - down) / (2 * delta))
            each = (up_each - down_each) / (2 * delta)      # paired by seed: a Student-t interval of them
            half = stats.t.ppf(0.975, reps - 1) * each.std(axis=0, ddof=1) / np.sqrt(reps)
            np.testing.assert_allclose(got[n][1, k], half, rtol=1e-9)
