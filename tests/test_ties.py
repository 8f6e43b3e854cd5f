"""Best-of-K ties within a relative tolerance (issue 18, item 11).

On ``grid = {start = -1, stop = 1, num = 21}`` with reward ``-x^2``, ``r(0.9)`` and ``r(-0.9)``
differ by an ulp or two; exact float equality gave one of them all the tie mass and a symmetric
ecosystem drifted. Rewards within :data:`~ecosystem.core.curation.TIE_RTOL` are ties, in the
population operator and in the sampling choice.
"""

from __future__ import annotations

import numpy as np

from ecosystem.core import curation
from ecosystem.core.curation import BestOfK, best_of_k_h, tie_levels

X = np.linspace(-1.0, 1.0, 21)
R = -X**2


def test_the_issue_grid_has_rounding_ties():
    assert R[1] != R[19] and abs(R[1] - R[19]) <= 2 * np.spacing(abs(R[1]))   # a rounding, not a preference


def test_population_operator_shares_tie_mass():
    p = np.full((1, 21), 1 / 21)
    h = best_of_k_h(p, R, 4)[0]
    np.testing.assert_array_equal(h, h[::-1])


def _symmetric_loop(rounds: int = 60) -> float:
    """Mean position after ``rounds`` of half real data (a centred normal), half best-of-4."""
    real = np.exp(-(X**2) / 0.5)
    real /= real.sum()
    p = real[None].copy()
    for _ in range(rounds):
        q = p * best_of_k_h(p, R, 4)
        p = 0.5 * real + 0.5 * q / q.sum()
    return float(p[0] @ X)


def test_symmetric_ecosystem_does_not_drift(monkeypatch):
    assert abs(_symmetric_loop()) < 1e-14
    monkeypatch.setattr(curation, "TIE_RTOL", 0.0)   # the old exact-equality rule drifts
    assert abs(_symmetric_loop()) > 1e-4


def test_sampling_choice_breaks_near_ties_uniformly():
    rng = np.random.default_rng(0)
    scores = np.tile([R[1], R[19], R[0]], (20_000, 1))   # two one-ulp-apart maxima and a loser
    pick = BestOfK(3).choose(scores, rng)
    counts = np.bincount(pick, minlength=3)
    assert counts[2] == 0
    assert abs(counts[0] - counts[1]) < 5 * np.sqrt(20_000)


def test_distinct_rewards_stay_distinct():
    v = np.array([1.0, 1.0 + 1e-9, 2.0, 2.0 * (1 + 1e-13), 3.0])
    np.testing.assert_array_equal(tie_levels(v), [0, 1, 2, 4])
    scores = np.array([[1.0, 1.0 + 1e-9]])
    assert BestOfK(2).choose(scores, np.random.default_rng(0))[0] == 1
