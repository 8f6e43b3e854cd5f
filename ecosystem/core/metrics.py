"""Metrics of the field, batched over models (rows of moments).

- alignment ``E_p[r]`` (nats-free reward units), also as a model x reward matrix;
- diversity: entropy in nats (categorical); total variance and log-det of the
  covariance (Gaussian);
- drift from real data: ``KL(p || p_data)`` in nats (categorical), 2-Wasserstein
  distance (Gaussian);
- homogenisation: mean pairwise divergence between models (squared Hellinger for
  categorical; ``|mu_i - mu_j|^2 + |S_i^1/2 - S_j^1/2|_F^2`` for Gaussians, equal to W2^2
  when covariances commute), computed in O(N) through the identity
  ``sum_{i != j} |a_i - a_j|^2 = 2 N sum_i |a_i|^2 - 2 |sum_i a_i|^2``;
- convergence: relative parameter change per round.
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from ecosystem.core.families import Categorical, Family
from ecosystem.core.rewards import Reward


def expected_reward(family: Family, rows: np.ndarray, reward: Reward) -> np.ndarray:
    """``E_{p_i}[r]`` for every row ``(V, k)``; returns ``(V,)``."""
    if isinstance(family, Categorical):
        return rows @ family.reward_table(reward)
    mean, cov = family.mean_cov(rows)
    form = reward.quadratic_form()
    if form is not None:
        # E r(x) = r(mu) - tr(Q S) / 2 for r quadratic with Hessian -Q
        return reward(mean) - 0.5 * np.einsum("ij,vji->v", form[1], cov)
    mean, root = family._roots(rows)
    return np.array([reward(m + family._nodes @ r.T).mean() for m, r in zip(mean, root, strict=True)])


def alignment(family: Family, rows: np.ndarray, rewards: list[Reward | None]) -> np.ndarray:
    """Alignment of model ``i`` under its own reward ``rewards[i]`` (NaN where None)."""
    out = np.full(len(rows), np.nan)
    groups: dict[int, tuple[Reward, list[int]]] = {}
    for i, r in enumerate(rewards):
        if r is not None:
            groups.setdefault(id(r), (r, []))[1].append(i)
    for reward, idx in groups.values():
        out[idx] = expected_reward(family, rows[idx], reward)
    return out


def cross_alignment(family: Family, rows: np.ndarray, rewards: list[Reward]) -> np.ndarray:
    """``E_{p_i}[r_k]`` for every model ``i`` and reward ``k``: ``(V, R)``."""
    if not rewards:
        return np.zeros((len(rows), 0))
    if isinstance(family, Categorical):
        return rows @ np.stack([family.reward_table(r) for r in rewards], axis=1)
    return np.stack([expected_reward(family, rows, r) for r in rewards], axis=1)


def _sum_plogp(rows: np.ndarray) -> np.ndarray:
    """``sum_x p log p`` per row (``0 log 0 = 0``), without scipy's slower ``xlogy``."""
    logs = np.maximum(rows, np.finfo(float).tiny)   # p log p -> 0 as p -> 0
    np.log(logs, out=logs)
    return np.einsum("ij,ij->i", rows, logs)


def diversity(family: Family, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Diversity columns: ``diversity`` (entropy or total variance) and, for Gaussians, ``log_det``."""
    if isinstance(family, Categorical):
        return {"diversity": -_sum_plogp(rows)}
    _, cov = family.mean_cov(rows)
    sign, logdet = np.linalg.slogdet(cov)
    return {
        "diversity": np.trace(cov, axis1=1, axis2=2),
        "log_det": np.where(sign > 0, logdet, -np.inf),
    }


def _sqrtm(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    return (vecs * np.sqrt(np.clip(vals, 0, None))[..., None, :]) @ np.swapaxes(vecs, -1, -2)


def drift(family: Family, rows: np.ndarray, reference: np.ndarray, entropy: np.ndarray | None = None) -> np.ndarray:
    """Distance of each row from the reference ``(k,)`` or ``(V, k)``: KL (categorical) or W2 (Gaussian).

    ``entropy``: the rows' entropies if already computed (categorical; saves a pass).
    """
    reference = np.atleast_2d(reference)
    if isinstance(family, Categorical) and len(reference) == 1 and np.all(reference > 0):
        neg_entropy = _sum_plogp(rows) if entropy is None else -entropy
        return neg_entropy - rows @ np.log(reference[0])
    if isinstance(family, Categorical):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(xlogy(rows, rows) - xlogy(rows, reference), axis=1)
    mean, cov = family.mean_cov(rows)
    ref_mean, ref_cov = family.mean_cov(reference)
    root = _sqrtm(ref_cov)
    cross = _sqrtm(root @ cov @ root)
    w2 = np.sum((mean - ref_mean) ** 2, axis=1) + np.trace(
        cov + ref_cov - 2 * cross, axis1=1, axis2=2
    )
    return np.sqrt(np.clip(w2, 0.0, None))


def pairwise_divergence(family: Family, rows: np.ndarray) -> float:
    """Mean pairwise divergence between models (homogenisation: lower is more alike)."""
    n = len(rows)
    if n < 2:
        return 0.0
    if isinstance(family, Categorical):
        rows = rows if rows.min() >= 0 else np.clip(rows, 0, None)
        total = 2 * n * rows.sum() - 2 * np.sum(np.sqrt(rows).sum(axis=0) ** 2)   # sum sqrt(p)^2 = sum p
        return float(0.5 * total / (n * (n - 1)))
    mean, cov = family.mean_cov(rows)
    a = np.concatenate([mean, _sqrtm(cov).reshape(n, -1)], axis=1)
    total = 2 * n * np.sum(a * a) - 2 * np.sum(a.sum(axis=0) ** 2)
    return float(total / (n * (n - 1)))


def relative_change(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``|theta_t - theta_{t-1}| / |theta_{t-1}|`` per row (Euclidean norms of moment rows)."""
    diff = new - old
    step = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return step / np.maximum(np.sqrt(np.einsum("ij,ij->i", old, old)), 1e-300)

