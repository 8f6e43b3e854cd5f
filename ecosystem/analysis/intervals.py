"""The 95% Student-t interval of a mean over replicates (seeds, runs), as the analyses and studies report it."""

from __future__ import annotations

import numpy as np
from scipy.special import stdtrit


def t_half_width(values: np.ndarray) -> np.ndarray | float:
    """Half-width of the 95% interval of the mean over the first axis of ``values`` ``(S, ...)``:
    ``t_{0.975, S-1} sd / sqrt(S)`` (``sd`` with ``ddof = 1``); shape ``values.shape[1:]``
    (NaN for ``S = 1``: callers say what one replicate gives)."""
    s = len(values)
    return stdtrit(s - 1, 0.975) * values.std(axis=0, ddof=1) / np.sqrt(s)   # t.ppf's own quantile


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean of ``values`` ``(S,)`` and its Student-t 95% interval (:func:`t_half_width`;
    ``low == high == mean`` for one value)."""
    v = np.asarray(values, dtype=float)
    half = float(t_half_width(v)) if v.size > 1 else 0.0
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)
