"""Metrics of the field, batched over models (rows of moments), measured once per round.

Per model (the formulas are the family's, see :class:`~ecosystem.core.families.Family`):

- ``alignment`` ``E_p[r]`` under the model's own users' reward (reward units); the
  model x reward table ``E_{p_i}[r_k]`` (``cross_alignment``);
- ``diversity``: entropy in nats (categorical); total variance, and ``log_det`` of the
  covariance (Gaussian);
- ``drift`` from the reference (real data): ``KL(p || p_data)`` in nats (categorical),
  2-Wasserstein distance (Gaussian);
- ``change``: relative parameter change per round (convergence).

Conditional models (:mod:`ecosystem.core.conditional`) measure alignment on their own domain
and, with ``cross_alignment``, on every model's domain (``domain``: the model x domain table
``(N, N)``, each model under its own users' reward).

Learned models (:mod:`ecosystem.core.learned`) are measured on evaluation draws with common
random numbers; their alignment comes with its standard error (``alignment_se``).

For the ecosystem: mean and minimum alignment, mean diversity, mean drift, maximum change,
and homogenisation as the mean pairwise divergence between models (squared Hellinger for
categorical models; ``|mu_i - mu_j|^2 + |S_i^1/2 - S_j^1/2|_F^2`` for Gaussians).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecosystem.core import rowwise
from ecosystem.core.families import Family
from ecosystem.core.learned import Learned
from ecosystem.core.rewards import Reward

METRICS = ("alignment", "diversity", "drift", "change", "pairwise_divergence", "cross_alignment")
"""What a run can measure each round (all by default); a metric left out is NaN in its
columns (and in the ecosystem columns made from it), and ``cross_alignment`` is the
model x reward table."""
ECOSYSTEM_COLUMNS = (
    "mean_alignment", "min_alignment", "mean_diversity", "pairwise_divergence",
    "mean_drift", "max_change",
)
AGENT_COLUMNS = ("alignment", "diversity", "drift", "change", "curation_ratio")


RowIndex = slice | np.ndarray
"""Rows of a group of models: a slice where they are evenly spaced (``rows[i]`` a view), else an index array."""


def alignment(family: Family, rows: np.ndarray, rewards: list[Reward | None]) -> np.ndarray:
    """Alignment of model ``i`` under its own reward ``rewards[i]`` (NaN where None); ``(V,)``."""
    return _alignment(family, rows, by_reward(rewards))


def _alignment(family: Family, rows: np.ndarray, groups: list[tuple[Reward, RowIndex]]) -> np.ndarray:
    """Alignment ``(V,)`` of the models of each group under its reward (:func:`by_reward`; NaN elsewhere)."""
    out = np.full(len(rows), np.nan)
    for reward, idx in groups:
        out[idx] = family.expected_reward(rows[idx], reward)
    return out


def by_reward(rewards: list[Reward | None]) -> list[tuple[Reward, RowIndex]]:
    """The models ``rewards[i]`` holds for each distinct reward (models without one left out).

    Evenly spaced models (a block, or rewards cycled over the models) are a slice: the family
    then reads a view of their rows instead of a copy, the same numbers (``tests/test_metrics_batched.py``).
    """
    groups: dict[int, tuple[Reward, list[int]]] = {}
    for i, r in enumerate(rewards):
        if r is not None:
            groups.setdefault(id(r), (r, []))[1].append(i)
    return [(r, _row_index(members)) for r, members in groups.values()]


def _row_index(members: list[int]) -> RowIndex:
    """Increasing row numbers ``members`` as a slice when evenly spaced, else an index array."""
    idx = np.array(members, dtype=np.int64)
    steps = np.diff(idx)
    if steps.size == 0 or (steps == steps[0]).all():
        return slice(members[0], members[-1] + 1, int(steps[0]) if steps.size else 1)
    return idx


def domain_alignment(family: Family, rows: np.ndarray, rewards: list[Reward | None]) -> np.ndarray:
    """Model ``i``'s alignment under ``rewards[i]`` on model ``j``'s domain, ``(N, N)`` (NaN rows
    for models without users)."""
    out = np.full((len(rows), len(rows)), np.nan)
    domains = rows[:, :family.n_in]
    for reward, idx in by_reward(rewards):
        out[idx] = family.alignment_on(rows[idx], reward, domains)
    return out


def relative_change(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``|theta_t - theta_{t-1}| / |theta_{t-1}|`` per row ``(N,)`` (Euclidean norms of moment
    rows ``(N, k)``); large rows on two cores (:func:`~ecosystem.core.rowwise.rowwise`)."""
    return rowwise.rowwise(_relative_change_rows, new, old, min_size=rowwise.ARITHMETIC_MIN_SIZE)


def _relative_change_rows(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """:func:`relative_change` in one call."""
    diff = new - old
    step = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return step / np.maximum(np.sqrt(np.einsum("ij,ij->i", old, old)), 1e-300)


@dataclass(frozen=True)
class Evaluation:
    """Where each model's alignment comes from, worked out once per compiled graph.

    ``rewards[i]``: model ``i``'s users' reward (None: no users); ``groups``: the models of
    each reward (:func:`by_reward`); ``unnamed``: the same for the models whose reward is
    not one of the named rewards of the model x reward table; ``cells``: rows and columns
    ``(M,)`` of that table holding the other models' alignments.
    """

    rewards: list[Reward | None]
    groups: list[tuple[Reward, RowIndex]]
    unnamed: list[tuple[Reward, RowIndex]]
    cells: tuple[np.ndarray, np.ndarray]

    @classmethod
    def of(cls, rewards: list[Reward | None], named: dict[str, Reward]) -> Evaluation:
        index = {id(r): k for k, r in enumerate(named.values())}
        column = np.array([index.get(id(r), -1) for r in rewards], dtype=np.int64)
        unnamed = [None if k >= 0 else r for r, k in zip(rewards, column.tolist(), strict=True)]
        read = np.flatnonzero(column >= 0)
        return cls(rewards, by_reward(rewards), by_reward(unnamed), (read, column[read]))


def measure(family: Family, rows: np.ndarray, old: np.ndarray, evaluation: Evaluation,
            named: dict[str, Reward], reference: np.ndarray, want: frozenset[str]) -> tuple[dict, dict]:
    """One round's metrics: ``(per model, ecosystem)``.

    ``rows`` ``(N, k)`` after the round, ``old`` ``(N, k)`` before it; ``named``: the rewards of
    the model x reward table; ``want``: the metrics to compute (others are NaN). Per model:
    ``alignment``, ``diversity``, ``drift``, ``change`` ``(N,)``, family extras such as
    ``log_det``, and ``cross`` ``(N, R)`` (None when not measured).
    """
    missing = np.full(len(rows), np.nan)
    cross = (family.expected_rewards(rows, list(named.values())) if named else np.zeros((len(rows), 0))) \
        if "cross_alignment" in want else None
    m = {"alignment": missing, "diversity": missing, "drift": missing, "change": missing, "cross": cross}
    if "alignment" in want and cross is None:
        m["alignment"] = _alignment(family, rows, evaluation.groups)
    elif "alignment" in want:
        # a model whose users hold a named reward: its alignment is a cell of the cross table
        m["alignment"] = _alignment(family, rows, evaluation.unnamed)
        m["alignment"][evaluation.cells[0]] = cross[evaluation.cells]
    if "diversity" in want:
        m.update(family.diversity(rows))
    if "drift" in want:
        m["drift"] = family.drift(rows, reference, m if "diversity" in want else None)
    if "change" in want:   # a learned family refits objects in place and records their change itself
        m["change"] = family.change(rows, old) if isinstance(family, Learned) else relative_change(rows, old)
    if "cross_alignment" in want and hasattr(family, "alignment_on"):
        m["domain"] = domain_alignment(family, rows, evaluation.rewards)
    if isinstance(family, Learned):
        m["alignment_se"] = family.standard_error(rows, evaluation.rewards) if "alignment" in want else missing
    defined = m["alignment"][~np.isnan(m["alignment"])]
    ecosystem = {
        "mean_alignment": float(defined.mean()) if defined.size else float("nan"),
        "min_alignment": float(defined.min()) if defined.size else float("nan"),
        "mean_diversity": float(m["diversity"].mean()),
        "pairwise_divergence": family.pairwise_divergence(rows) if "pairwise_divergence" in want else float("nan"),
        "mean_drift": float(m["drift"].mean()),
        "max_change": float(m["change"].max()),
    }
    return m, ecosystem
