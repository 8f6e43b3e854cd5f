"""W4: a learned-model ecosystem, the engine against a bare scikit-learn loop.

Eight Gaussian-mixture models of the bundled digits (10 components in a 16-dimensional PCA
space), the shipped ``learned/digits`` scenario on a ring of 8, 1,000 training samples per
model per round, Luce K = 6; alignment measured every round on 1,000 evaluation draws.

The bare loop does the same work with scikit-learn called directly: per round and model the
same number of draws from each input (real digits, raw model outputs, K candidates per
curated sample scored by stroke weight and one kept with Luce probabilities), one warm-started
``GaussianMixture.fit`` in the PCA space, and the mean reward of 1,000 evaluation draws. It
has no graph, no agents and no data collection: the floor of the engine.

``python -m benchmarks.learned [--quick]`` prints ``w4.*`` figures (medians of interleaved
repetitions; one BLAS thread per fit in both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

FULL = {"n": 8, "samples": 1000, "K": 6, "steps": 10, "reps": 3}
QUICK = {"n": 4, "samples": 200, "K": 3, "steps": 2, "reps": 1}


def scenario(size: dict, workers: int = 1):
    """The W4 scenario: ``learned/digits`` at ``size`` with fits on ``workers`` threads."""
    from ecosystem.formats.scenario import load

    return load("learned/digits", {
        "topology.n": size["n"], "topology.model.sample_size": size["samples"],
        "topology.curator.K": size["K"], "space.eval_size": 1000, "space.workers": workers,
        "metrics": ["alignment"], "steps": size["steps"],
    })


def engine(size: dict, workers: int = 1, seed: int = 0) -> float:
    """Seconds per round of the engine (model built before the clock starts)."""
    model = scenario(size, workers).build(seed=seed)
    start = time.perf_counter()
    model.run(size["steps"])
    return (time.perf_counter() - start) / size["steps"]


class _Bare:
    """One model of the bare loop: a fixed PCA and a warm-started mixture, called directly."""

    def __init__(self, data: np.ndarray, seed: int) -> None:
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture

        self.pca = PCA(16).fit(data)
        self.gmm = GaussianMixture(10, warm_start=True, random_state=seed)
        self.fit(data)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Components by weight, then noise through each component's Cholesky factor (numpy)."""
        comp = rng.choice(len(self.gmm.weights_), size=n, p=self.gmm.weights_)
        z = self.gmm.means_[comp] + np.einsum("nij,nj->ni", self.chol[comp], rng.standard_normal((n, 16)))
        return np.clip(self.pca.inverse_transform(z), 0, 16)

    def fit(self, x: np.ndarray) -> None:
        self.gmm.fit(self.pca.transform(x))
        self.chol = np.linalg.cholesky(self.gmm.covariances_)


def bare(size: dict, seed: int = 0) -> float:
    """Seconds per round of the bare loop on the W4 graph's shares (setup before the clock)."""
    from ecosystem.core import flows

    sc = scenario(size)
    graph, tau = sc.graph, 0.02
    data = sc.family.objects[0].data
    rng = np.random.default_rng(seed)
    names = flows.nodes_of(graph, "model")
    models = {m: _Bare(data[rng.integers(0, len(data), 1000)], seed + i) for i, m in enumerate(names)}
    ink = lambda x: x.mean(axis=1) / 16  # noqa: E731
    start = time.perf_counter()
    for _ in range(size["steps"]):
        training = {}
        for m in names:
            parts = []
            for u, _, w in graph.in_edges(m, data="weight"):
                n = round(w * size["samples"])
                kind = flows.kind(graph, u)
                if kind == "source":
                    parts.append(data[rng.integers(0, len(data), n)])
                elif kind == "model":
                    parts.append(models[u].sample(n, rng))
                else:
                    k = size["K"]
                    cand = models[flows.producer(graph, u)].sample(n * k, rng).reshape(n, k, -1)
                    logits = ink(cand.reshape(n * k, -1)).reshape(n, k) / tau
                    p = np.exp(logits - logits.max(axis=1, keepdims=True))
                    pick = (p.cumsum(axis=1) / p.sum(axis=1, keepdims=True) < rng.random((n, 1))).sum(axis=1)
                    parts.append(cand[np.arange(n), np.minimum(pick, k - 1)])
            training[m] = np.concatenate(parts)
        for m in names:
            models[m].fit(training[m])
        [ink(models[m].sample(1000, np.random.default_rng(seed))).mean() for m in names]
    return (time.perf_counter() - start) / size["steps"]


def measure(quick: bool = False) -> dict:
    """The ``w4`` figures: seconds per round (engine on 1 and 2 threads, bare loop), medians of
    interleaved repetitions, and their ratios."""
    size = QUICK if quick else FULL
    times: dict[str, list[float]] = {"engine": [], "engine_two": [], "bare": []}
    import sklearn.decomposition
    import sklearn.mixture  # noqa: F401  (loaded first: the thread limit covers only loaded libraries)
    with threadpool_limits(limits=1):
        for rep in range(size["reps"]):
            times["bare"].append(bare(size, rep))
            times["engine"].append(engine(size, 1, rep))
            times["engine_two"].append(engine(size, 2, rep))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "models": size["n"], "samples": size["samples"], "K": size["K"], "steps": size["steps"],
        "engine_s_per_round": med["engine"], "engine_two_cores_s_per_round": med["engine_two"],
        "bare_s_per_round": med["bare"], "ratio_to_bare": med["engine"] / med["bare"],
        "speedup_two_cores": med["engine"] / med["engine_two"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.quick)
    if args.json:
        print(json.dumps({"w4": result}))
    else:
        for key, value in result.items():
            print(f"w4.{key} = {value:.4g}" if isinstance(value, float) else f"w4.{key} = {value}")
