"""Class-conditional learned models (the paper's class-conditional image models, THEORY.md
sections 7 and 10): one inner learned model per class label, plus a label distribution.

**How a sample carries its label.** A labelled dataset (:class:`Labelled`, e.g.
``data = { name = "photos", labels = true }``) appends one column to every row: the class
index ``0..C-1`` as a number, after the picture's values. A model's samples have the same
layout, ``(n, d + 1)``. The picture is the first ``prod(shape)`` values of a row: the image
rewards (:mod:`ecosystem.learned.rewards`) and the sample grid see only those, so the label
never enters a reward; the sample-based metrics (diversity, drift, pairwise divergence) see the
whole row, the label included. Samples are clipped to the dataset's bounds, so the class
indices must lie inside them (digits: 10 classes in ``[0, 16]``; photos: 2 in ``[0, 1]``).

**The model** (:class:`ClassConditionalModel`, ``class_conditional`` in scenario files) fits
the label distribution to the labels of its training set (the next round's labels come from
the previous pool) and each class's inner model (e.g. ``gaussian_mixture``) on that class's
features; a class with fewer than ``min_samples`` training samples keeps its inner model. The
engine can ask for answers to given labels: :meth:`~ClassConditionalModel.draw_inputs` draws
labels, :meth:`~ClassConditionalModel.sample_given` answers them, so that a curator's K
candidates can share one label.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ecosystem.core.learned import Dataset, GenerativeModel
from ecosystem.errors import show
from ecosystem.learned._checks import at_least


@dataclass(eq=False)
class Labelled(Dataset):
    """A dataset whose rows end in a class index (``data`` ``(n, d + 1)``: features, then the label
    ``0..C-1``); ``classes``: the ``C`` class names; ``shape`` describes the features."""

    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        labels = self.data[:, -1]
        if not self.classes or not np.array_equal(labels, np.rint(labels)) \
                or labels.min() < 0 or labels.max() >= len(self.classes):
            raise ValueError(f"data: the last column must hold class indices 0..{len(self.classes) - 1}")
        if self.bounds is not None and not self.bounds[0] <= 0 <= len(self.classes) - 1 <= self.bounds[1]:
            raise ValueError(f"labels: {len(self.classes)} class indices do not fit in the bounds {self.bounds} "
                             "(samples are clipped to them)")
        if self.shape is not None and math.prod(self.shape) != self.data.shape[1] - 1:
            raise ValueError(f"shape: {self.shape} does not describe the {self.data.shape[1] - 1} feature columns")

    @property
    def features(self) -> Dataset:
        """The features alone ``(n, d)`` as a plain dataset (a view, no copy)."""
        return Dataset(self.data[:, :-1], name=self.name, bounds=self.bounds, shape=self.shape)

    @property
    def labels(self) -> np.ndarray:
        """The class index of every row ``(n,)``."""
        return self.data[:, -1].astype(np.int64)

    def draw_inputs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` class indices ``(n,)``: the labels of ``n`` rows drawn uniformly (the real label mix)."""
        return self.labels[rng.integers(0, len(self.data), n)]

    def sample_given(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One real row ``(n, d + 1)`` per class index of ``inputs`` ``(n,)``: a uniform draw among
        that class's rows."""
        inputs = np.asarray(inputs, dtype=np.int64)
        order = np.argsort(self.labels, kind="stable")
        starts = np.searchsorted(self.labels[order], np.arange(len(self.classes) + 1))
        counts = np.diff(starts)
        if len(inputs) and (inputs.min() < 0 or inputs.max() >= len(self.classes) or counts[inputs].min() == 0):
            raise ValueError(f"inputs must be class indices with rows in 0..{len(self.classes) - 1}")
        pick = starts[inputs] + np.floor(rng.random(len(inputs)) * counts[inputs]).astype(np.int64)
        return self.data[order[pick]]


def labels_of(samples: np.ndarray, classes: int) -> np.ndarray:
    """The class indices ``(m,)`` in the last column of ``samples`` ``(m, d + 1)`` (rounded to the
    nearest integer); ``ValueError`` if one is not in ``0..classes-1``."""
    labels = np.rint(samples[:, -1]).astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels: the last column must hold class indices 0..{classes - 1}, "
                         f"got values in [{samples[:, -1].min():g}, {samples[:, -1].max():g}]")
    return labels


class ClassConditionalModel:
    """One inner model per class (from ``make``, on the features) and a label distribution
    ``probs`` ``(C,)``; rows are ``(d + 1,)``: features, then the class index.

    Args:
        make: a fresh, unfitted inner model (a :class:`~ecosystem.core.learned.GenerativeModel` of
            the ``d`` features).
        classes: the number of classes ``C``.
        min_samples: a class with fewer training samples keeps its inner model (its label
            frequency still follows the training set); every class needs that many at the first fit.
    """

    name = "class_conditional"

    def __init__(self, make: Callable[[], GenerativeModel], classes: int, min_samples: int = 10) -> None:
        self.classes = int(at_least("classes", classes, 1))
        self.min_samples = int(at_least("min_samples", min_samples, 1))
        self.models = [make() for _ in range(self.classes)]
        self.probs: np.ndarray | None = None
        self.dim = 0
        """The number of features ``d`` (set by the first fit)."""
        self._fitted = np.zeros(self.classes, dtype=bool)

    def fit(self, samples: np.ndarray, weights: np.ndarray | None, rng: np.random.Generator) -> None:
        """Refit on ``samples`` ``(m, d + 1)`` (``weights`` ``(m,)``, None: equal): the label
        distribution to the (weighted) label frequencies, each class's model on its rows; each
        class's fit draws from its own child of ``rng``."""
        x = np.asarray(samples, dtype=float)
        w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (len(x),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(x)} finite values >= 0 with a positive sum")
        labels = labels_of(x, self.classes)
        counts = np.bincount(labels, minlength=self.classes)
        refit = counts >= self.min_samples
        if not (refit | self._fitted).all():
            k = int(np.flatnonzero(~(refit | self._fitted))[0])
            raise ValueError(f"class {k} has {counts[k]} training samples at its first fit, fewer than "
                             f"min_samples = {self.min_samples} (give more samples, e.g. a larger init_size)")
        for k, child in zip(np.flatnonzero(refit), rng.spawn(int(refit.sum())), strict=True):
            mine = labels == k
            self.models[k].fit(x[mine, :-1], None if weights is None else w[mine], child)
        self._fitted |= refit
        self.dim = x.shape[1] - 1
        mass = np.bincount(labels, weights=w, minlength=self.classes)
        self.probs = mass / mass.sum()

    def draw_inputs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` class indices ``(n,)`` (int) from the label distribution."""
        if self.probs is None:
            raise RuntimeError(f"{type(self).__name__}: fit it before sampling")
        return rng.choice(self.classes, size=n, p=self.probs)

    def sample_given(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One sample ``(n, d + 1)`` per class index of ``inputs`` ``(n,)``, in its row: one call of
        each class's model, in class order; the last column is the class index."""
        inputs = np.asarray(inputs)
        if inputs.ndim != 1 or (inputs.size and (inputs.min() < 0 or inputs.max() >= self.classes)):
            raise ValueError(f"inputs must be class indices 0..{self.classes - 1} (n,), got {show(inputs)}")
        if self.probs is None:
            raise RuntimeError(f"{type(self).__name__}: fit it before sampling")
        out = np.empty((len(inputs), self.dim + 1))
        for k in np.unique(inputs):
            mine = inputs == k
            out[mine, :-1] = self.models[int(k)].sample(int(mine.sum()), rng)
        out[:, -1] = inputs
        return out

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples ``(n, d + 1)``: labels from the label distribution, then one answer each."""
        return self.sample_given(self.draw_inputs(n, rng), rng)

    def parameters(self) -> np.ndarray:
        """The label distribution, then each class's inner ``parameters()`` (those that have them):
        a vector of fixed length."""
        if self.probs is None:
            raise RuntimeError(f"{type(self).__name__}: fit it before asking for its parameters")
        inner = [np.asarray(m.parameters(), dtype=float) for m in self.models if hasattr(m, "parameters")]
        return np.concatenate([self.probs, *inner])


def factory(resolve: Callable[[str, dict, Dataset], Callable[[], GenerativeModel]],
            known: Mapping[str, object]) -> Callable[..., ClassConditionalModel]:
    """The scenario files' ``class_conditional`` model factory; ``resolve(name, params, space)`` makes
    inner models and ``known`` holds their names (the registry's, which registers the factory)."""

    def class_conditional(inner: str | dict | None = None, min_samples: int = 10,
                          space: Dataset | None = None) -> ClassConditionalModel:
        """A class-conditional model on the labelled dataset ``space``: ``inner`` names the per-class
        model as a scenario's ``model`` key does (a name or a table with a ``name`` and its
        parameters; None: ``gaussian_mixture`` with its defaults)."""
        if not isinstance(space, Labelled):
            raise ValueError("data: a class-conditional model needs labelled data, e.g. data = "
                             "{ name = \"photos\", labels = true }")
        spec = {"name": "gaussian_mixture"} if inner is None else {"name": inner} if isinstance(inner, str) else inner
        if (not isinstance(spec, dict) or not isinstance(spec.get("name"), str)
                or spec["name"] == ClassConditionalModel.name):
            raise ValueError(f"inner: must name another learned model (a name or a table with a name), "
                             f"got {show(inner)}")
        if spec["name"] not in known:
            raise ValueError(f"inner: unknown learned model {show(spec['name'])} (known: {', '.join(sorted(known))})")
        try:
            make = resolve(spec["name"], {k: v for k, v in spec.items() if k != "name"}, space.features)
        except ValueError as err:
            raise ValueError(f"inner.{err}") from None
        return ClassConditionalModel(make, len(space.classes), min_samples)

    return class_conditional
