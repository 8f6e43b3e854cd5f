"""Learned generative models as nodes of the data-flow graph (sample mode).

A node's model is any object with ``sample(n, rng)`` and ``fit(samples, weights, rng)``
(:class:`GenerativeModel`); real data is a :class:`Dataset` (its rows resampled). The
:class:`Learned` family holds these objects and implements the sample-mode part of the
:class:`~ecosystem.core.families.Family` protocol, so the engine draws, curates and scores
every candidate of a round in batches exactly as for the built-in families, and loops only
over the fits (:meth:`Learned.refit`, optionally on several processes).

A learned model's *row* is a handle ``(1,)``: the index of its object in
:attr:`Learned.objects`. Models are refit in place (warm start, as retrained networks
are), so a round of learned models changes the objects its state points to.

Metrics are sample based and use common random numbers (one evaluation seed for every
model and round): alignment is the mean reward over ``eval_size`` draws (with its standard
error), diversity the total variance of those draws (data units squared), drift and
pairwise divergence the sliced 1-Wasserstein distance (data units) between draws and the
real data, and change the relative change of ``parameters()`` per round.
"""

from __future__ import annotations

import copy
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol, runtime_checkable

import numpy as np
from threadpoolctl import threadpool_limits

from ecosystem.core.curation import Curator
from ecosystem.core.families import Judges
from ecosystem.core.rewards import Reward
from ecosystem.errors import FlowError, NumericalError


@runtime_checkable
class GenerativeModel(Protocol):
    """What a learned model provides. Optional: ``log_prob(x) -> (m,)`` and
    ``parameters() -> (p,)`` (a vector of fixed length, for the ``change`` metric)."""

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples ``(n, d)``, every random draw from ``rng``."""

    def fit(self, samples: np.ndarray, weights: np.ndarray | None, rng: np.random.Generator) -> None:
        """Refit on ``samples`` ``(m, d)`` with ``weights`` ``(m,)`` (None: equal), in place;
        a warm start from the current parameters is allowed; random draws from ``rng``."""


@dataclass(eq=False)
class Dataset:
    """Real data as a node: ``data`` ``(n, d)``, sampled by drawing rows uniformly.
    ``bounds``: ``(low, high)`` of every coordinate; ``shape``: one row as a picture
    (e.g. ``(8, 8)`` grey or ``(4, 4, 3)`` RGB), or None."""

    data: np.ndarray
    name: str = "data"
    bounds: tuple[float, float] | None = None
    shape: tuple[int, ...] | None = None

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.data[rng.integers(0, len(self.data), n)]


def _fit(job: tuple[GenerativeModel, np.ndarray, np.ndarray | None, np.random.Generator]) -> GenerativeModel:
    """Fit one model on samples with weights (None: equal), with one BLAS and OpenMP thread (the
    fits' small matrix operations are many times slower with more, and their numbers would depend
    on the machine); the fitted model."""
    model, samples, weights, rng = job
    with threadpool_limits(limits=1):
        model.fit(samples, weights, rng)
    return model


def sorted_projections(x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Samples ``x`` ``(..., m, d)`` projected on unit ``directions`` ``(P, d)``, each projection
    sorted: ``(..., m, P)``, the quantiles that :func:`sliced_wasserstein` matches."""
    with threadpool_limits(limits=1, user_api="blas"):   # small products: more threads only slow them
        return np.sort(x @ directions.T, axis=-2)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Sliced 1-Wasserstein distance between equal-size samples ``a`` ``(..., m, d)`` and
    ``b`` ``(..., m, d)`` (broadcast): the mean over unit ``directions`` ``(P, d)`` of the exact
    1-D distance between the projected samples (sorted and matched); shape ``(...)``."""
    return _distance(sorted_projections(a, directions), sorted_projections(b, directions))


def _distance(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Sliced W1 from sorted projections ``(..., m, P)`` (broadcast)."""
    return np.abs(pa - pb).mean(axis=(-2, -1))


@dataclass(eq=False)
class Learned:
    """The family of learned models on a ``dim``-dimensional data space (sample mode only).

    Args:
        make: returns a fresh, unfitted model for each model node.
        dim: the data's dimension ``d``.
        bounds: ``(low, high)`` of every coordinate (samples are clipped to it), or None.
        shape: the shape of one sample as a picture (e.g. ``(8, 8)`` or ``(4, 4, 3)``), or None.
        init_size: draws of a model's initial distribution it is first fit on.
        eval_size: draws per model for the metrics (common random numbers).
        projections: directions of the sliced Wasserstein distance.
        workers: processes the fits of a round run on (results do not depend on it; models
            and their classes must then be picklable, e.g. defined in an importable module).
    """

    make: Callable[[], GenerativeModel]
    dim: int
    bounds: tuple[float, float] | None = None
    shape: tuple[int, ...] | None = None
    init_size: int = 1000
    eval_size: int = 1000
    projections: int = 64
    workers: int = 1
    objects: list = field(default_factory=list)
    """Datasets and models; a row ``[h]`` stands for ``objects[h]``."""
    kind: str = "learned"
    _eval_seed: int = 0
    _version: dict = field(default_factory=dict)
    _change: dict = field(default_factory=dict)
    _start: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict)
    _scores: dict = field(default_factory=dict)
    _pool: ProcessPoolExecutor | None = None

    width = 1

    # ------------------------------------------------------------------ objects
    def add(self, obj: GenerativeModel | Dataset) -> np.ndarray:
        """Register a dataset or a model; its row ``(1,)``."""
        self.objects.append(obj)
        return np.array([len(self.objects) - 1], dtype=float)

    def of(self, row: np.ndarray) -> GenerativeModel | Dataset:
        """The object a row ``(1,)`` stands for."""
        return self.objects[int(row[0])]

    def instance(self, rng: np.random.Generator) -> Learned:
        """A copy for one run: its own registry (models deep-copied, sources shared) and an
        evaluation seed drawn from ``rng``; the original stays reusable."""
        objects = [copy.deepcopy(o) if hasattr(o, "fit") else o for o in self.objects]
        return Learned(self.make, self.dim, self.bounds, self.shape, self.init_size, self.eval_size,
                       self.projections, self.workers, objects, _eval_seed=int(rng.integers(2**63)))

    def adopt(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A model of its own for each row ``(N, 1)``: a copy of the row's object if it is a model
        (has ``fit``), else a fresh model fit on ``init_size`` draws of it (a dataset or any
        source with ``sample``); their rows ``(N, 1)``."""
        rngs = rng.spawn(len(rows))
        fresh, data, out = [], [], np.empty((len(rows), 1))
        for i, row in enumerate(rows):
            obj = self.of(row)
            out[i] = self.add(copy.deepcopy(obj) if hasattr(obj, "fit") else self.make())
            if not hasattr(obj, "fit"):
                fresh.append(i)
                data.append(obj.sample(self.init_size, rngs[i]))
        self._fit_all(out[fresh, 0].astype(np.int64), data, [rngs[i] for i in fresh])
        for row in out:
            h = int(row[0])
            self._version[h] = 0
            self._start[h] = self._evaluate(h)
        return out

    def _fit_all(self, handles: np.ndarray, training: list[np.ndarray], rngs: list[np.random.Generator],
                 weights: list[np.ndarray | None] | None = None) -> None:
        """Fit ``objects[h]`` on ``training[j]`` (with ``weights[j]``, None: equal) and ``rngs[j]`` for
        each ``h = handles[j]``: here, or on ``workers`` processes (the fitted models come back; the
        numbers are the same)."""
        weights = [None] * len(handles) if weights is None else weights
        jobs = [(self.objects[h], x, w, r) for h, x, w, r in zip(handles, training, weights, rngs, strict=True)]
        if self.workers > 1 and len(jobs) > 1:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            fitted = list(self._pool.map(_fit, jobs))
        else:
            fitted = [_fit(job) for job in jobs]
        for h, model in zip(handles, fitted, strict=True):
            self.objects[h] = model

    def close(self) -> None:
        """Stop the fit processes (``workers > 1``), if started."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def refit(self, rows: np.ndarray, training: list[np.ndarray], rng: np.random.Generator,
              rates: np.ndarray | None = None) -> None:
        """Refit the models of ``rows`` ``(M, 1)`` on their training sets (``(m_i, d)`` each);
        each fit draws from its own child of ``rng``.

        ``rates`` ``(M,)``: retraining rates ``eta`` in (0, 1] (None: all 1). A learned model has
        no parameters to interpolate, so partial retraining is its sample analogue: a model with
        ``eta < 1`` refits on its training set (total weight ``eta``) plus ``m_i`` draws of its
        current self (total weight ``1 - eta``), drawn from ``rng`` before the fits; in
        expectation the refit's training distribution is ``eta D_i + (1 - eta) p_i``. Models with
        ``eta = 1`` fit exactly as without rates (no draws, no weights).
        """
        handles = rows[:, 0].astype(np.int64)
        weights: list[np.ndarray | None] = [None] * len(handles)
        if rates is not None and (np.asarray(rates) < 1).any():
            training = list(training)
            for j, (h, eta) in enumerate(zip(handles, rates, strict=True)):
                m = len(training[j])
                if eta < 1 and m:
                    training[j] = np.concatenate([training[j], self._draw(int(h), m, rng)])
                    weights[j] = np.r_[np.full(m, eta / m), np.full(m, (1 - eta) / m)]
        before = [self._parameters(h) for h in handles]
        self._fit_all(handles, training, rng.spawn(len(rows)), weights)
        for h, old in zip(handles, before, strict=True):
            new = self._parameters(h)
            self._version[h] = self._version.get(h, 0) + 1
            self._change[h] = (float(np.linalg.norm(new - old) / max(np.linalg.norm(old), 1e-300))
                               if old is not None and new is not None else float("nan"))

    def _parameters(self, h: int) -> np.ndarray | None:
        get = getattr(self.objects[h], "parameters", None)
        return None if get is None else np.asarray(get(), dtype=float)

    # ------------------------------------------------------------------ sample mode
    @property
    def conditional(self) -> bool:
        """Whether the models answer inputs (e.g. class labels): every object offers
        ``draw_inputs(n, rng)`` and ``sample_given(inputs, rng)``; then a curator's K candidates
        answer the same input, and edges say whose inputs a model's training samples use."""
        return bool(self.objects) and all(hasattr(o, "sample_given") for o in self.objects)

    def _by_object(self, rows: np.ndarray, which: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """The entries of ``which`` grouped by the object their row stands for, in handle order."""
        handles = rows[which, 0].astype(np.int64)
        order = np.argsort(handles, kind="stable")
        distinct, starts = np.unique(handles[order], return_index=True)
        return list(zip(distinct.tolist(), np.split(order, starts[1:]), strict=True))

    def sample(self, rows: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One sample per entry of ``which`` (indices into ``rows`` ``(V, 1)``): ``(m, d)``;
        one call per distinct object, in handle order."""
        out = np.empty((len(which), self.dim))
        for h, idx in self._by_object(rows, which):
            out[idx] = self._draw(h, len(idx), rng)
        return out

    def draw_inputs(self, rows: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Conditional models: one input (class index) per entry of ``which`` from its object; ``(m,)``."""
        out = np.empty(len(which), dtype=np.int64)
        for h, idx in self._by_object(rows, which):
            out[idx] = self.objects[h].draw_inputs(len(idx), rng)
        return out

    def sample_given(self, rows: np.ndarray, which: np.ndarray, inputs: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
        """Conditional models: one sample ``(d,)`` per entry of ``which`` answering ``inputs`` ``(m,)``."""
        out = np.empty((len(which), self.dim))
        for h, idx in self._by_object(rows, which):
            out[idx] = self._checked(h, self.objects[h].sample_given(inputs[idx], rng), len(idx), "sample_given")
        return out

    def _draw(self, h: int, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._checked(h, self.objects[h].sample(n, rng), n, "sample")

    def _checked(self, h: int, x: np.ndarray, n: int, call: str) -> np.ndarray:
        """Object ``h``'s ``n`` samples ``x`` (from its method ``call``) as floats ``(n, d)`` clipped to
        the bounds (or a clear error)."""
        x = np.asarray(x, dtype=float)
        if x.shape != (n, self.dim):
            raise FlowError(f"learned model {type(self.objects[h]).__name__}: {call}({n}) returned shape "
                            f"{x.shape}, expected ({n}, {self.dim})")
        if not np.isfinite(x).all():
            raise NumericalError(f"learned model {type(self.objects[h]).__name__}: samples are not finite")
        return x if self.bounds is None else np.clip(x, *self.bounds)

    def judges(self, curator: Curator) -> Judges:
        return Judges(curator, list(curator.rewards))

    def scores(self, judges: Judges, user: int, samples: np.ndarray) -> np.ndarray:
        return judges.handles[user](samples)

    def tilts_exactly(self, curator: Curator) -> bool:
        return False

    # ------------------------------------------------------------------ metrics
    def _evaluate(self, h: int) -> np.ndarray:
        """``eval_size`` draws ``(e, d)`` of object ``h`` from the evaluation seed (cached per fit)."""
        key = (h, self._version.get(h, 0))
        if key not in self._cache:
            if len(self._cache) > 4 * len(self.objects):
                self._cache.clear()
                self._scores.clear()
            self._cache[key] = self._draw(h, self.eval_size, np.random.default_rng(self._eval_seed))
        return self._cache[key]

    def evaluation(self, rows: np.ndarray) -> np.ndarray:
        """Evaluation draws ``(V, e, d)`` of every row."""
        return np.stack([self._evaluate(int(r[0])) for r in rows])

    def reward_scores(self, rows: np.ndarray, reward: Reward) -> np.ndarray:
        """``reward`` of every evaluation draw of every row, ``(V, e)``: one reward call for the rows
        not scored since their last fit, the others from the cache (alignment, its standard
        error and the model x reward table of a round share them)."""
        keys = [(int(r[0]), self._version.get(int(r[0]), 0), id(reward)) for r in rows]
        new = [i for i, k in enumerate(keys) if k not in self._scores]
        if new:
            scores = reward(self.evaluation(rows[new]).reshape(-1, self.dim)).reshape(len(new), -1)
            self._scores.update(zip([keys[i] for i in new], scores, strict=True))
        return np.stack([self._scores[k] for k in keys])

    def expected_reward(self, rows: np.ndarray, reward: Reward) -> np.ndarray:
        return self.reward_scores(rows, reward).mean(axis=1)

    def expected_rewards(self, rows: np.ndarray, rewards: list[Reward]) -> np.ndarray:
        return np.stack([self.expected_reward(rows, r) for r in rewards], axis=1) if rewards \
            else np.zeros((len(rows), 0))

    def standard_error(self, rows: np.ndarray, rewards: list[Reward | None]) -> np.ndarray:
        """Standard error ``(V,)`` of each row's alignment under ``rewards[i]`` (NaN where None)."""
        out = np.full(len(rows), np.nan)
        for reward in {id(r): r for r in rewards if r is not None}.values():
            mine = np.array([r is reward for r in rewards])
            scores = self.reward_scores(rows[mine], reward)
            out[mine] = scores.std(axis=1, ddof=1) / np.sqrt(scores.shape[1])
        return out

    def diversity(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        x = self.evaluation(rows)
        return {"diversity": x.var(axis=1, ddof=1).sum(axis=1)}

    @cached_property
    def _directions(self) -> np.ndarray:
        """The sliced Wasserstein distance's unit directions ``(P, d)``, fixed for the run."""
        u = np.random.default_rng(self._eval_seed + 1).standard_normal((self.projections, self.dim))
        return u / np.linalg.norm(u, axis=1, keepdims=True)

    def initial_draws(self, row: np.ndarray) -> np.ndarray:
        """Evaluation draws ``(e, d)`` of the model at ``row`` ``(1,)`` as it started the run."""
        return self._start[int(row[0])]

    def _reference(self, row: np.ndarray) -> np.ndarray:
        """The draws a row's drift is measured from: a model's first ones, or a source's."""
        h = int(row[0])
        return self._start[h] if h in self._start else self._evaluate(h)

    def drift(self, rows: np.ndarray, reference: np.ndarray, diversity: dict | None = None) -> np.ndarray:
        """Sliced W1 ``(V,)`` from the reference row ``(1,)`` (a source: projected once) or rows ``(V, 1)``."""
        reference = np.asarray(reference, dtype=float).reshape(-1, 1)
        ref = np.stack([self._reference(r) for r in reference])           # (1 or V, e, d)
        return sliced_wasserstein(self.evaluation(rows), ref, self._directions)

    def pairwise_divergence(self, rows: np.ndarray) -> float:
        """Mean sliced W1 over the pairs of rows, each row's draws projected once."""
        if len(rows) < 2:
            return 0.0
        p = sorted_projections(self.evaluation(rows), self._directions)   # (V, e, P)
        return float(np.mean(np.concatenate([_distance(p[i], p[i + 1:]) for i in range(len(p) - 1)])))

    def change(self, rows: np.ndarray, old: np.ndarray) -> np.ndarray:
        """Relative parameter change ``(N,)`` of each model at its last refit (NaN: none yet,
        or the model has no ``parameters()``)."""
        return np.array([self._change.get(int(r[0]), float("nan")) for r in rows])

    def points(self, samples: np.ndarray) -> np.ndarray:
        return samples

    # ------------------------------------------------------------------ no closed forms
    def _closed_form(self, *args, **kwargs):
        raise FlowError("learned models run in sample mode only: population mode and the analysis need "
                        "a family with closed forms (categorical or gaussian)")

    fit = curate = empirical = normalise = pack = unpack = admissible = _closed_form
    difference_step = reward_gradient = _closed_form
