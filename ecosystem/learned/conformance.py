"""The conformance suite of the learned-model protocol: run it on your own model.

>>> from ecosystem.learned.conformance import check
>>> check(lambda: MyModel(), data)          # data (n, d); raises AssertionError at the first failure

It checks what the engine relies on (:class:`~ecosystem.core.learned.GenerativeModel`): shapes,
finiteness, that every random draw comes from the given ``rng`` (same seed, same samples), that
fits are deterministic and move the model to the data, that equal weights act as no weights,
that a model can be deep-copied (each run copies its models), the optional ``parameters()`` and
``log_prob``, and finally a three-round run of two curated models through the engine, twice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import networkx as nx
import numpy as np

from ecosystem.core.curation import BestOfK, Curator
from ecosystem.core.learned import Dataset, GenerativeModel, Learned
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Linear

N = 2000
"""Samples drawn per check."""


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(f"conformance: {message}")


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _fitted(make: Callable[[], GenerativeModel], data: np.ndarray, seed: int,
            weights: np.ndarray | None = None) -> GenerativeModel:
    model = make()
    model.fit(data, weights, _rng(seed))
    return model


def _same(a: GenerativeModel, b: GenerativeModel, seed: int) -> bool:
    return np.array_equal(a.sample(N, _rng(seed)), b.sample(N, _rng(seed)))


def check(make: Callable[[], GenerativeModel], data: np.ndarray, *, seed: int = 0) -> None:
    """Run every check on models from ``make`` fit on ``data`` ``(n, d)`` (a few hundred rows or
    more); raise ``AssertionError`` naming the first failure."""
    data = np.asarray(data, dtype=float)
    _expect(data.ndim == 2 and len(data) >= 10 and np.isfinite(data).all(),
            f"data must be (n, d) finite with n >= 10, got shape {data.shape}")
    d = data.shape[1]
    model = make()
    _expect(isinstance(model, GenerativeModel),
            f"make() returned a {type(model).__name__}, which lacks sample(n, rng) or fit(samples, weights, rng)")
    model.fit(data, None, _rng(seed))
    x = model.sample(N, _rng(seed + 1))
    _expect(isinstance(x, np.ndarray) and x.shape == (N, d), f"sample({N}, rng) returned shape "
            f"{getattr(x, 'shape', type(x).__name__)}, expected ({N}, {d})")
    _expect(np.issubdtype(x.dtype, np.floating), f"sample returned dtype {x.dtype}, expected floats")
    _expect(bool(np.isfinite(x).all()), "sample returned values that are not finite")
    _expect(_same(model, model, seed + 1), "sample(n, rng) with equal rngs gave different samples "
            "(every random draw must come from rng)")
    _expect(not np.array_equal(model.sample(N, _rng(seed + 1)), model.sample(N, _rng(seed + 2))),
            "sample(n, rng) with different seeds gave identical samples (does it use rng?)")
    _expect(_same(model, copy.deepcopy(model), seed + 1), "a deep copy of a fitted model samples differently")
    _expect(_same(_fitted(make, data, seed), _fitted(make, data, seed), seed + 1),
            "two fresh models fit with equal rngs on the same data sample differently (fit must draw from rng only)")
    _check_moves(make, data, seed)
    _check_weights(make, data, seed)
    if hasattr(model, "parameters"):
        _check_parameters(model, data, seed)
    if hasattr(model, "log_prob"):
        lp = np.asarray(model.log_prob(data[:100]))
        _expect(lp.shape == (min(100, len(data)),), f"log_prob of {min(100, len(data))} points returned shape "
                f"{lp.shape}, expected ({min(100, len(data))},)")
        _expect(bool(np.isfinite(lp).all()), "log_prob returned values that are not finite on the data")
    _check_engine(make, data, seed)


def _check_moves(make: Callable[[], GenerativeModel], data: np.ndarray, seed: int) -> None:
    """A refit on the data shifted by ``+c`` (two standard deviations along the data's first
    principal axis, so that models in a latent space can follow) brings the sample mean at least
    halfway closer to the shifted data's mean."""
    model = _fitted(make, data, seed)
    centred = data - data.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    shifted = data + 2.0 * (centred @ axis).std() * axis
    target = shifted.mean(axis=0)
    before = np.linalg.norm(model.sample(N, _rng(seed + 1)).mean(axis=0) - target)
    model.fit(shifted, None, _rng(seed + 2))
    after = np.linalg.norm(model.sample(N, _rng(seed + 1)).mean(axis=0) - target)
    _expect(after < 0.5 * before, f"after a refit on the data shifted by +c the sample mean is {after:.4g} from "
            f"the shifted data's mean, before it {before:.4g}: the fit does not follow the data")


def _check_weights(make: Callable[[], GenerativeModel], data: np.ndarray, seed: int) -> None:
    """Equal weights (0.5 each, not 1) give the distribution of no weights: sample means within
    a tenth of a standard deviation plus five standard errors, in every coordinate."""
    plain = _fitted(make, data, seed).sample(N, _rng(seed + 1))
    weighted = _fitted(make, data, seed, np.full(len(data), 0.5)).sample(N, _rng(seed + 2))
    std = plain.std(axis=0) + 1e-12
    gap = np.abs(plain.mean(axis=0) - weighted.mean(axis=0))
    _expect(bool((gap <= 0.1 * std + 5 * std * np.sqrt(2 / N)).all()),
            f"a fit with equal weights differs from one with weights=None: sample means differ by up to "
            f"{gap.max():.4g}")


def _check_parameters(model: GenerativeModel, data: np.ndarray, seed: int) -> None:
    first = np.asarray(model.parameters(), dtype=float)
    _expect(first.ndim == 1 and first.size > 0, f"parameters() must be a non-empty vector, got shape {first.shape}")
    model.fit(data[::-1], None, _rng(seed + 3))
    second = np.asarray(model.parameters(), dtype=float)
    _expect(second.shape == first.shape, f"parameters() changed length on a refit: {first.shape} -> {second.shape}")
    _expect(bool(np.isfinite(first).all() and np.isfinite(second).all()), "parameters() are not finite")


def _check_engine(make: Callable[[], GenerativeModel], data: np.ndarray, seed: int) -> None:
    """Models A and B in sample mode, each half real data, A half B's outputs curated by B's users
    and B half A's outputs: three rounds, twice with one seed, identical agents frames."""
    size = min(len(data), 300)
    family = Learned(make, dim=data.shape[1], init_size=size, eval_size=size)
    real = family.add(Dataset(data))
    graph = nx.DiGraph()
    graph.add_node("data", kind="source", moments=real)
    for name in ("A", "B"):
        graph.add_node(name, kind="model", moments=real, sample_size=size, retention="replace")
        graph.add_edge("data", name, weight=0.5)
    graph.add_node("users", kind="curator",
                   curator=Curator(BestOfK(2), [Linear(np.full(data.shape[1], 1.0 / data.shape[1]))]))
    graph.add_edge("B", "users")
    graph.add_edge("users", "A", weight=0.5)
    graph.add_edge("A", "B", weight=0.5)

    def frame():
        run = EcosystemModel(graph, family, mode="sample", rng=seed)
        run.run(3)
        return run.agents_frame()

    first, second = frame(), frame()
    _expect(len(first) > 0 and first["step"].max() >= 3,
            f"the engine's run has no rounds 1..3: {first['step'].tolist()}")
    _expect(first.equals(second), "two engine runs with the same seed gave different agents frames:\n"
            f"{first.compare(second) if first.shape == second.shape else (first.shape, second.shape)}")
