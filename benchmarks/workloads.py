"""The benchmark workloads as scenario dicts, built through the real engine
(:func:`ecosystem.formats.scenario.parse`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ecosystem.formats.scenario import Scenario, parse

W1_METRICS = ["alignment", "diversity"]
"""What W1 collects every round, as its definition says: per-model alignment and entropy."""


def w1_data(n: int = 2000, outcomes: int = 512, populations: int = 16, m: int = 3, steps: int = 100,
            seed: int = 0, metrics: list[str] | None = W1_METRICS) -> dict[str, Any]:
    """W1: categorical models on a 2-D grid of ``outcomes`` points, directed Barabasi-Albert flows.

    Each model trains on its ``m`` upstream models and its own outputs (``include_self``: every
    model's outputs are consumed, so every model keeps its curator), 0.2 real data and a curated
    share 0.5; ``populations`` curator populations with random linear rewards are cycled over
    the models (one :class:`~ecosystem.core.curation.Curator` object each: one curation call per
    population per round); Luce K = 4, tau = 1. ``metrics``: measured every round (None: all
    of the engine's metrics).
    """
    rng = np.random.default_rng(seed)
    rewards = {f"r{k}": {"kind": "linear", "weights": rng.normal(0.0, 1.0, 2).tolist()} for k in range(populations)}
    cols = max(c for c in range(1, int(outcomes**0.5) + 1) if outcomes % c == 0)  # a near-square grid
    data = {
        "name": "w1", "seed": seed, "steps": steps, "mode": "population",
        "space": {"family": "categorical",
                  "grid": {"start": [-1.0, -1.0], "stop": [1.0, 1.0], "num": [outcomes // cols, cols]}},
        "rewards": rewards,
        "sources": {"real": {"normal": {"mean": [0.0, 0.0], "var": 0.25}}},
        "topology": {"kind": "barabasi_albert", "n": n, "m": m, "directed": True, "real_share": 0.2,
                     "curation_ratio": 0.5, "include_self": True,
                     "curator": {"rule": "luce", "K": 4, "tau": 1.0, "rewards": list(rewards)}},
    }
    if metrics is not None:
        data["metrics"] = list(metrics)
    return data


def w2_data(n: int = 200, dim: int = 8, samples: int = 2000, populations: int = 4, steps: int = 100,
            seed: int = 0) -> dict[str, Any]:
    """W2: Gaussian models (full covariance) in sample mode on Watts-Strogatz flows (k = 4, p = 0.1).

    Quadratic rewards (random centres, curvature 1) cycled over ``populations`` curator
    populations; Luce K = 4, tau = 1; 0.2 real data, curated share 0.5.
    """
    rng = np.random.default_rng(seed)
    rewards = {f"q{k}": {"kind": "quadratic", "eta": 1.0, "center": rng.normal(0.0, 1.0, dim).tolist()}
               for k in range(populations)}
    return {
        "name": "w2", "seed": seed, "steps": steps, "mode": "sample",
        "space": {"family": "gaussian", "dim": dim, "covariance": "full"},
        "rewards": rewards,
        "sources": {"real": {"mean": [0.0] * dim, "var": 1.0}},
        "topology": {"kind": "watts_strogatz", "n": n, "k": 4, "p": 0.1, "real_share": 0.2,
                     "curation_ratio": 0.5, "model": {"sample_size": samples},
                     "curator": {"rule": "luce", "K": 4, "tau": 1.0, "rewards": list(rewards)}},
    }


def w3_data(n: int = 50, steps: int = 200) -> dict[str, Any]:
    """W3's base scenario: a 50-model W1-like ecosystem (64 outcomes, 4 populations, all metrics)."""
    return w1_data(n=n, outcomes=64, populations=4, steps=steps, metrics=None)


def build(data: dict[str, Any]) -> Scenario:
    """The scenario of a workload dict."""
    return parse(data, origin=f"<benchmark {data['name']}>")
